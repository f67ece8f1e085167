package users

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// oneUser is a domain.Users with one human user.
type oneUser struct {
	domain.Users
	u *domain.User
}

func (f oneUser) UserByUsername(_ context.Context, name string) (*domain.User, error) {
	if f.u.Username == name {
		return f.u, nil
	}
	return nil, domain.Errorf(domain.KindNotFound, "user not found")
}

func cheapPasswords(t *testing.T) *auth.Passwords {
	t.Helper()
	pw, err := auth.NewPasswords(auth.Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}, rand.Reader, 1)
	if err != nil {
		t.Fatal(err)
	}
	return pw
}

// countingPasswords returns cheap passwords counting argon2id runs in
// *derived, and the hash of "right password".
func countingPasswords(t *testing.T, derived *int) (*auth.Passwords, string) {
	t.Helper()
	pw := cheapPasswords(t)
	hash, _ := pw.Hash(t.Context(), "right password")
	derive := pw.Derive
	pw.Derive = func(p, s []byte, tm, m uint32, th uint8, n uint32) []byte {
		*derived++
		return derive(p, s, tm, m, th, n)
	}
	return pw, hash
}

func TestUnknownUserCostsOneHashLikeAWrongPassword(t *testing.T) {
	derived := 0
	pw, hash := countingPasswords(t, &derived)
	svc := New(Config{}, Deps{Users: oneUser{u: &domain.User{ID: "u", Username: "alice", PasswordHash: hash}}, Passwords: pw, Clock: time.Now, Rand: rand.Reader})
	var errs []error
	for _, name := range []string{"alice", "mallory", "Not A Username!"} {
		derived = 0
		_, err := svc.AuthenticatePassword(context.Background(), name, "wrong password", "10.0.0.1")
		if derived != 1 {
			t.Errorf("%s: %d argon2id derivations, want exactly 1", name, derived)
		}
		errs = append(errs, err)
	}
	for i, err := range errs {
		if err != domain.ErrUnauthenticated {
			t.Errorf("attempt %d: %v, want the same ErrUnauthenticated for a wrong password, an unknown user and a malformed name", i, err)
		}
	}
	for _, name := range []string{"alice", "ALICE"} {
		if p, err := svc.AuthenticatePassword(context.Background(), name, "right password", "10.0.0.1"); err != nil || p.User.ID != "u" {
			t.Errorf("right password as %q: %v, %v", name, p, err)
		}
	}
}

// Changing one's own password checks the old one as a login does: one
// argon2id per attempt, the same limits.
func TestChangePasswordChecksTheOldOneAsALogin(t *testing.T) {
	derived := 0
	pw, hash := countingPasswords(t, &derived)
	alice := &domain.User{ID: "u", Username: "alice", PasswordHash: hash}
	svc := New(Config{LoginAttemptsPerUserAndAddress: 2}, Deps{Users: oneUser{u: alice}, Passwords: pw, Clock: time.Now, Rand: rand.Reader})
	caller := &domain.Principal{User: alice}
	change := PasswordChange{UserID: "u", OldPassword: "wrong password", NewPassword: "a new password", ClientAddr: "10.0.0.1"}
	for i, want := range []domain.Kind{domain.KindPermissionDenied, domain.KindPermissionDenied, domain.KindResourceExhausted} {
		derived = 0
		err := svc.ChangePassword(context.Background(), caller, change)
		if domain.KindOf(err) != want {
			t.Errorf("attempt %d: %v, want kind %v", i+1, err, want)
		}
		if wantDerived := map[bool]int{true: 1, false: 0}[want != domain.KindResourceExhausted]; derived != wantDerived {
			t.Errorf("attempt %d: %d argon2id derivations, want %d", i+1, derived, wantDerived)
		}
	}
}
