package tokens

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// countingTokens is a domain.Tokens that counts reads; the real stores are
// tested in the store package and end to end.
type countingTokens struct {
	domain.Tokens
	reads int
	token *domain.Token
}

var _ domain.Tokens = (*countingTokens)(nil)

func (c *countingTokens) TokenByID(_ context.Context, id string) (*domain.Token, error) {
	c.reads++
	if c.token != nil && c.token.ID == id {
		return c.token, nil
	}
	return nil, domain.Errorf(domain.KindNotFound, "token not found")
}

func TestMalformedTokensAreRefusedBeforeAnyRead(t *testing.T) {
	good, _ := auth.NewAPIToken(rand.Reader)
	store := &countingTokens{token: &domain.Token{ID: good.ID, SecretHash: auth.HashSecret(good.Secret)}}
	svc := New(Config{}, nil, store, nil, nil, nil, nil, time.Now, rand.Reader)
	s := good.String()
	for name, bad := range map[string]string{
		"typo":      s[:30] + otherDigit(s[30]) + s[31:],
		"truncated": s[:len(s)-1],
		"checksum":  s[:len(s)-1] + otherDigit(s[len(s)-1]),
	} {
		if _, err := svc.Exchange(context.Background(), bad); err != domain.ErrUnauthenticated {
			t.Errorf("%s: %v, want ErrUnauthenticated", name, err)
		}
		if _, err := svc.AuthenticateBearer(context.Background(), bad); err != domain.ErrUnauthenticated {
			t.Errorf("%s as a bearer: %v, want ErrUnauthenticated", name, err)
		}
	}
	if store.reads != 0 {
		t.Errorf("malformed tokens caused %d database reads, want 0", store.reads)
	}
	// The control: a well-formed token with a wrong secret is read, then refused.
	wrong := auth.APIToken{ID: good.ID, Secret: good.Secret[:len(good.Secret)-1] + "x"}.String()
	if _, err := svc.Exchange(context.Background(), wrong); err != domain.ErrUnauthenticated || store.reads != 1 {
		t.Errorf("wrong secret: %v after %d reads, want ErrUnauthenticated after 1", err, store.reads)
	}
}

// otherDigit returns a base62 digit other than c.
func otherDigit(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

// users is a domain.Users with one human user.
type users struct {
	domain.Users
	u *domain.User
}

func (f users) UserByUsername(_ context.Context, name string) (*domain.User, error) {
	if f.u.Username == name {
		return f.u, nil
	}
	return nil, domain.Errorf(domain.KindNotFound, "user not found")
}

func TestUnknownUserCostsOneHashLikeAWrongPassword(t *testing.T) {
	pw, err := auth.NewPasswords(auth.Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}, rand.Reader, 1)
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := pw.Hash("right password")
	derived := 0
	derive := pw.Derive
	pw.Derive = func(p, s []byte, tm, m uint32, th uint8, n uint32) []byte {
		derived++
		return derive(p, s, tm, m, th, n)
	}
	svc := New(Config{}, users{u: &domain.User{ID: "u", Username: "alice", PasswordHash: hash}}, nil, pw, nil, nil, nil, time.Now, rand.Reader)
	var errs []error
	for _, name := range []string{"alice", "mallory"} {
		derived = 0
		_, err := svc.AuthenticatePassword(context.Background(), name, "wrong password", "10.0.0.1")
		if derived != 1 {
			t.Errorf("%s: %d argon2id derivations, want exactly 1", name, derived)
		}
		errs = append(errs, err)
	}
	if errs[0] != domain.ErrUnauthenticated || errs[1] != domain.ErrUnauthenticated {
		t.Errorf("wrong password: %v; unknown user: %v; want the same ErrUnauthenticated", errs[0], errs[1])
	}
	if p, err := svc.AuthenticatePassword(context.Background(), "alice", "right password", "10.0.0.1"); err != nil || p.User.ID != "u" {
		t.Errorf("right password: %v, %v", p, err)
	}
}
