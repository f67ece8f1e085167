package auth

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are argon2id's cost parameters.
type Argon2Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
}

// OWASPParams are OWASP's recommended argon2id parameters (Password Storage
// Cheat Sheet): 19 MiB of memory, 2 iterations, 1 degree of parallelism.
var OWASPParams = Argon2Params{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// Passwords hashes and verifies passwords with argon2id, in PHC string form
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash), so parameters can be raised
// later without invalidating stored hashes.
type Passwords struct {
	params Argon2Params
	rnd    io.Reader
	dummy  string        // a hash to verify against when the user does not exist
	slots  chan struct{} // bounds concurrent hashes and verifications: each holds MemoryKiB
	// Derive is argon2.IDKey; tests count calls through it.
	Derive func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte
}

// NewPasswords returns a hasher with the given parameters, drawing salts from
// rnd, that runs at most maxConcurrent hashes and verifications at once
// (<= 0: one).
func NewPasswords(params Argon2Params, rnd io.Reader, maxConcurrent int) (*Passwords, error) {
	p := &Passwords{params: params, rnd: rnd, slots: make(chan struct{}, max(maxConcurrent, 1)), Derive: argon2.IDKey}
	// The dummy needs the real parameters (verifying against it costs what
	// verifying a real hash does) but no real password: random salt and key
	// make a hash nothing matches, with no argon2id run (and its 19 MiB) at start.
	salt, key := make([]byte, saltLen), make([]byte, keyLen)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return nil, fmt.Errorf("reading salt: %w", err)
	}
	if _, err := io.ReadFull(rnd, key); err != nil {
		return nil, fmt.Errorf("reading dummy key: %w", err)
	}
	p.dummy = p.encode(salt, key)
	return p, nil
}

// Hash returns the PHC string of password with a fresh salt. It waits for
// one of the bounded slots, or returns ctx's error.
func (p *Passwords) Hash(ctx context.Context, password string) (string, error) {
	if err := p.acquire(ctx); err != nil {
		return "", err
	}
	defer p.release()
	salt := make([]byte, saltLen)
	if _, err := io.ReadFull(p.rnd, salt); err != nil {
		return "", fmt.Errorf("reading salt: %w", err)
	}
	key := p.Derive([]byte(password), salt, p.params.Iterations, p.params.MemoryKiB, p.params.Parallelism, keyLen)
	return p.encode(salt, key), nil
}

// encode writes a PHC string with p's parameters.
func (p *Passwords) encode(salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		p.params.MemoryKiB, p.params.Iterations, p.params.Parallelism,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// Verify reports whether password matches the PHC string hash. An empty hash
// (a machine user, or no such user) is verified against a dummy hash and
// fails, so the answer costs the same work either way. It waits for one of
// the bounded slots, or returns ctx's error.
func (p *Passwords) Verify(ctx context.Context, password, hash string) (bool, error) {
	if err := p.acquire(ctx); err != nil {
		return false, err
	}
	defer p.release()
	if hash == "" {
		_, _ = p.verify(password, p.dummy)
		return false, nil
	}
	return p.verify(password, hash)
}

// acquire takes a slot: 19 MiB of argon2id memory may be used.
func (p *Passwords) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Passwords) release() { <-p.slots }

func (p *Passwords) verify(password, hash string) (bool, error) {
	params, salt, key, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	got := p.Derive([]byte(password), salt, params.Iterations, params.MemoryKiB, params.Parallelism, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

var b64 = base64.RawStdEncoding

var errBadHash = errors.New("malformed argon2id hash")

func parsePHC(s string) (Argon2Params, []byte, []byte, error) {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return Argon2Params{}, nil, nil, errBadHash
	}
	var params Argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &params.MemoryKiB, &params.Iterations, &params.Parallelism); err != nil {
		return Argon2Params{}, nil, nil, errBadHash
	}
	salt, err1 := b64.DecodeString(parts[4])
	key, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) == 0 || params.Iterations == 0 || params.Parallelism == 0 {
		return Argon2Params{}, nil, nil, errBadHash
	}
	return params, salt, key, nil
}
