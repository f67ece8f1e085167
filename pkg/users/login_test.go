package users

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
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

// A flood of wrong passwords for one username from many addresses spends
// its budget: then new addresses are refused, right password or not, while
// an address the owner logged in from still gets through.
func TestLoginLimitsStopAFloodWithoutLockingTheOwnerOut(t *testing.T) {
	pw := cheapPasswords(t)
	hash, _ := pw.Hash(t.Context(), "right password")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	alice := &domain.User{ID: "u", Username: "alice", PasswordHash: hash}
	svc := New(Config{LoginAttemptsPerUserAndAddress: 10, LoginAttemptsPerAddress: 60, LoginAttemptsPerUser: 20},
		Deps{Users: oneUser{u: alice}, Passwords: pw, Clock: clock, Rand: rand.Reader})
	ctx := context.Background()
	login := func(password, addr string) error {
		_, err := svc.AuthenticatePassword(ctx, "alice", password, addr)
		return err
	}
	if err := login("right password", "198.51.100.7"); err != nil { // the owner's usual address
		t.Fatal(err)
	}
	checked := 0
	for i := range 30 { // 30 addresses, 5 wrong passwords each
		for range 5 {
			if login("wrong password", fmt.Sprintf("203.0.113.%d", i)) == domain.ErrUnauthenticated {
				checked++
			}
		}
	}
	if checked != 19 {
		t.Errorf("%d wrong passwords from many addresses were checked, want the budget of 20 less the owner's first login (from a then new address)", checked)
	}
	if err := login("right password", "203.0.113.200"); domain.KindOf(err) != domain.KindResourceExhausted {
		t.Errorf("the right password from a new address once the budget is spent: %v, want refused", err)
	}
	if err := login("right password", "198.51.100.7"); err != nil {
		t.Errorf("the owner at their usual address during the flood: %v", err)
	}
	// The budget refills: a minute later a new address is checked again.
	now = now.Add(time.Minute)
	if err := login("right password", "203.0.113.201"); err != nil {
		t.Errorf("a new address after the budget refilled: %v", err)
	}
	// An address known 30 days ago is no longer.
	now = now.Add(knownFor)
	for i := range 25 {
		login("wrong password", fmt.Sprintf("192.0.2.%d", i))
	}
	if err := login("right password", "198.51.100.7"); domain.KindOf(err) != domain.KindResourceExhausted {
		t.Errorf("an address last used over 30 days ago during a flood: %v, want refused", err)
	}
}

// IPv6 addresses count by their /64: a host rotating through its own /64
// is one address to the per-address limits.
func TestIPv6AddressesCountByTheirSlash64(t *testing.T) {
	for addr, want := range map[string]string{
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"203.0.113.9":          "203.0.113.9",
		"::ffff:203.0.113.9":   "::ffff:203.0.113.9",
		"not an address":       "not an address",
		"":                     "",
	} {
		if got := addressKey(addr); got != want {
			t.Errorf("addressKey(%q) = %q, want %q", addr, got, want)
		}
	}
	pw := cheapPasswords(t)
	svc := New(Config{LoginAttemptsPerUserAndAddress: 3}, Deps{Users: oneUser{u: &domain.User{Username: "alice"}}, Passwords: pw, Clock: time.Now, Rand: rand.Reader})
	for i := range 4 {
		_, err := svc.AuthenticatePassword(context.Background(), "alice", "wrong", fmt.Sprintf("2001:db8::%x", i+1))
		if want := map[bool]domain.Kind{true: domain.KindResourceExhausted, false: domain.KindUnauthenticated}[i == 3]; domain.KindOf(err) != want {
			t.Errorf("attempt %d from a new address of one /64: %v", i+1, err)
		}
	}
}

// TestHugeCredentialsCostNoMore: a password attempt with a huge username or
// password (HTTP Basic takes any length) costs one argon2id over at most
// MaxPasswordBytes, is refused like any wrong one, and is counted by a
// bounded key: two huge names alike in their first 64 bytes are one name
// to the limits.
func TestHugeCredentialsCostNoMore(t *testing.T) {
	derived, longest := 0, 0
	pw, hash := countingPasswords(t, &derived)
	derive := pw.Derive
	pw.Derive = func(p, s []byte, tm, m uint32, th uint8, n uint32) []byte {
		longest = max(longest, len(p))
		return derive(p, s, tm, m, th, n)
	}
	svc := New(Config{LoginAttemptsPerUserAndAddress: 1}, Deps{Users: oneUser{u: &domain.User{ID: "u", Username: "alice", PasswordHash: hash}},
		Passwords: pw, Clock: time.Now, Rand: rand.Reader})
	huge := strings.Repeat("u", 1<<20)
	if _, err := svc.AuthenticatePassword(context.Background(), "alice", "right password"+huge, "10.0.0.1"); err != domain.ErrUnauthenticated {
		t.Errorf("the right password with a megabyte after it: %v, want ErrUnauthenticated", err)
	}
	if derived != 1 || longest > domain.MaxPasswordBytes {
		t.Errorf("a megabyte password: %d derivations over up to %d bytes, want 1 over at most %d", derived, longest, domain.MaxPasswordBytes)
	}
	if _, err := svc.AuthenticatePassword(context.Background(), huge+"a", "wrong password", "10.0.0.2"); err != domain.ErrUnauthenticated {
		t.Fatalf("a megabyte username: %v", err)
	}
	if _, err := svc.AuthenticatePassword(context.Background(), huge+"b", "wrong password", "10.0.0.2"); domain.KindOf(err) != domain.KindResourceExhausted {
		t.Errorf("a second megabyte username alike in its first 64 bytes: %v, want the per-name limit", err)
	}
}
