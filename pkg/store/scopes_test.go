package store_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// TestRotateSecret checks that a rotation keeps the old hash as the previous
// one (whatever order the database assigns columns in) with its end, and
// refuses a token that is not live.
func TestRotateSecret(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		u := mustCreateUser(t, s, "userUUUUUUUUUUUU", "u")
		old, fresh := []byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
		mustCreateToken(t, s, &domain.Token{ID: "tok0000000000001", UserID: u.ID, SecretHash: old, CreateTime: base, Scopes: domain.ServiceScopes})
		until := base.Add(time.Hour)
		if err := s.RotateSecret(ctx, "tok0000000000001", 0, fresh, until, base); err != nil {
			t.Fatal(err)
		}
		got, err := s.TokenByID(ctx, "tok0000000000001")
		if err != nil {
			t.Fatal(err)
		}
		if string(got.SecretHash) != string(fresh) || string(got.PreviousSecretHash) != string(old) || !got.PreviousSecretExpireTime.Equal(until) || got.SecretGeneration != 1 {
			t.Errorf("after rotation: secret %q previous %q until %v generation %d; want %q, %q, %v, 1",
				got.SecretHash, got.PreviousSecretHash, got.PreviousSecretExpireTime, got.SecretGeneration, fresh, old, until)
		}
		// A rotation from the generation before (a caller that read the
		// token before the first rotation) changes nothing.
		if err := s.RotateSecret(ctx, "tok0000000000001", 0, old, time.Time{}, base); !errors.Is(err, domain.ErrSecretChanged) {
			t.Errorf("rotating from a past generation: %v, want ErrSecretChanged", err)
		}
		// Ending the grace of a past generation changes nothing; of the
		// current one, drops the previous secret.
		if err := s.EndGrace(ctx, "tok0000000000001", 0); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.TokenByID(ctx, "tok0000000000001"); string(got.SecretHash) != string(fresh) || got.PreviousSecretHash == nil {
			t.Errorf("after a stale rotation and EndGrace(0): secret %q previous %q; want %q and the old one kept", got.SecretHash, got.PreviousSecretHash, fresh)
		}
		if err := s.EndGrace(ctx, "tok0000000000001", 1); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.TokenByID(ctx, "tok0000000000001"); string(got.SecretHash) != string(fresh) || got.PreviousSecretHash != nil || !got.PreviousSecretExpireTime.IsZero() {
			t.Errorf("after EndGrace(1): secret %q previous %q until %v; want %q, none", got.SecretHash, got.PreviousSecretHash, got.PreviousSecretExpireTime, fresh)
		}
		if err := s.DeleteToken(ctx, "tok0000000000001", base); err != nil {
			t.Fatal(err)
		}
		if err := s.RotateSecret(ctx, "tok0000000000001", 1, old, time.Time{}, base); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("rotating a deleted token: %v, want not found", err)
		}
		if err := s.RotateSecret(ctx, "tokNOSUCHTOKEN00", 0, old, time.Time{}, base); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("rotating an unknown token: %v, want not found", err)
		}
	})
}

// TestTokensAboutToExpire checks ListTokens' ExpireBefore and CountExpiring.
func TestTokensAboutToExpire(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		u := mustCreateUser(t, s, "userUUUUUUUUUUUU", "u")
		hash := make([]byte, 32)
		for id, expire := range map[string]time.Time{
			"tokSOON000000001": base.Add(24 * time.Hour),
			"tokSOON000000002": base.Add(6 * 24 * time.Hour),
			"tokLATE000000001": base.Add(30 * 24 * time.Hour),
			"tokNEVER00000001": {},
		} {
			mustCreateToken(t, s, &domain.Token{ID: id, UserID: u.ID, SecretHash: hash, CreateTime: base, ExpireTime: expire, Scopes: domain.ServiceScopes})
		}
		mustCreateToken(t, s, &domain.Token{ID: "tokSOONDELETED01", UserID: u.ID, SecretHash: hash, CreateTime: base,
			ExpireTime: base.Add(time.Hour), Scopes: domain.ServiceScopes})
		if err := s.DeleteToken(ctx, "tokSOONDELETED01", base); err != nil {
			t.Fatal(err)
		}
		week := base.Add(7 * 24 * time.Hour)
		list, err := s.ListTokens(ctx, domain.TokenQuery{UserID: u.ID, Now: base, Limit: 10, ExpireBefore: week})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, tok := range list {
			ids = append(ids, tok.ID)
		}
		if len(ids) != 2 || ids[0] != "tokSOON000000001" || ids[1] != "tokSOON000000002" {
			t.Errorf("expiring within a week: %v, want tokSOON000000001 and tokSOON000000002", ids)
		}
		if n, err := s.CountExpiring(ctx, base, week); err != nil || n != 2 {
			t.Errorf("CountExpiring: %d, %v; want 2", n, err)
		}
	})
}

// TestTokensBeforeScopesKeepTheirPower writes a token as the schema before
// scopes had it, migrates, and finds it with the service's scopes of that
// version: it can do what it could, and no more.
func TestTokensBeforeScopesKeepTheirPower(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s, err := store.Open(storetest.MustConfig(t, driver))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.MigrateTo(ctx, "0006_locks"); err != nil {
			t.Fatal(err)
		}
		db := s.DB()
		for _, q := range []string{
			"INSERT INTO users (id, username, admin, create_time) VALUES ('userUUUUUUUUUUUU', 'u', false, '2026-01-01 00:00:00')",
			"INSERT INTO tokens (id, user_id, secret_hash, note, create_time) VALUES ('tokOLD0000000001', 'userUUUUUUUUUUUU', 'x', '', '2026-01-01 00:00:00')",
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := s.TokenByID(ctx, "tokOLD0000000001")
		if err != nil {
			t.Fatal(err)
		}
		want := domain.NewScopes("tokens:read", "tokens:write", "users:read", "users:write") // not introspect: it came later
		if got.Scopes.String() != want.String() {
			t.Errorf("an old token's scopes: %q, want %q", got.Scopes, want)
		}
	})
}

// TestSQLiteFileIsPrivate: the database file the store creates is its
// owner's alone, whatever the umask.
func TestSQLiteFileIsPrivate(t *testing.T) {
	cfg := storetest.MustConfig(t, store.DriverSQLite)
	storetest.MustOpenConfig(t, cfg)
	for _, suffix := range []string{"", "-wal"} {
		info, err := os.Stat(cfg.DSN + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group or others", cfg.DSN+suffix, mode)
		}
	}
}
