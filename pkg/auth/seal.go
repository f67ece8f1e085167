package auth

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// sealedPrefix marks a value sealed with the key-encryption key; values
// without it were stored before one was configured.
var sealedPrefix = []byte("tks-sealed-v1:")

// ErrSealed means the database holds sealed keys and no key-encryption key
// (or another one) is configured.
var ErrSealed = errors.New("the signing keys in the database are encrypted with a key-encryption key this process does not have (--key-encryption-key-file, or --old-key-encryption-key-file while changing it)")

// SealedKeys stores the signing keys and server secrets encrypted
// (AES-256-GCM, bound to the row they belong to) under a key-encryption key
// kept outside the database, so a database dump alone cannot mint tokens.
// Values stored before sealing was configured are still read.
type SealedKeys struct {
	keys domain.Keys
	aead cipher.AEAD   // seals, and opens
	old  []cipher.AEAD // open only: the keys being replaced
	rnd  io.Reader
}

var _ domain.Keys = (*SealedKeys)(nil)

// ParseKeyEncryptionKey reads a key-encryption key: 32 bytes, base64 (the
// form `openssl rand -base64 32` writes), surrounding space ignored.
func ParseKeyEncryptionKey(text []byte) ([]byte, error) {
	kek, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(text)))
	if err != nil || len(kek) != 32 {
		return nil, errors.New("a key-encryption key is 32 random bytes in base64 (openssl rand -base64 32)")
	}
	return kek, nil
}

// NewSealedKeys seals keys under kek (32 bytes), with nonces from rnd;
// values sealed under any of oldKEKs are read too, while Reseal moves
// them to kek (a key-encryption key rotation).
func NewSealedKeys(keys domain.Keys, kek []byte, rnd io.Reader, oldKEKs ...[]byte) (*SealedKeys, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	s := &SealedKeys{keys: keys, aead: aead, rnd: rnd}
	for _, k := range oldKEKs {
		old, err := newAEAD(k)
		if err != nil {
			return nil, err
		}
		s.old = append(s.old, old)
	}
	return s, nil
}

func newAEAD(kek []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	return cipher.NewGCM(block)
}

// rowOf names the row a value belongs to, the additional data its seal is
// bound to: a sealed value copied to another row does not open.
func rowOf(kind domain.SealedValueKind, name string) string { return string(kind) + ":" + name }

func (s *SealedKeys) seal(plaintext []byte, row string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := io.ReadFull(s.rnd, nonce); err != nil {
		return nil, fmt.Errorf("reading nonce: %w", err)
	}
	out := append(append([]byte{}, sealedPrefix...), nonce...)
	return s.aead.Seal(out, nonce, plaintext, []byte(row)), nil
}

func (s *SealedKeys) open(value []byte, row string) ([]byte, error) {
	sealed, ok := bytes.CutPrefix(value, sealedPrefix)
	if !ok {
		return value, nil // stored before sealing was configured
	}
	for _, aead := range append([]cipher.AEAD{s.aead}, s.old...) {
		n := aead.NonceSize()
		if len(sealed) < n {
			break
		}
		if plain, err := aead.Open(nil, sealed[:n], sealed[n:], []byte(row)); err == nil {
			return plain, nil
		}
	}
	return nil, ErrSealed
}

// Reseal seals every value in r under the key-encryption key, in one
// transaction: values stored in the clear, and values sealed under an old
// key-encryption key. A value none of the keys opens fails it, and nothing
// changes. It returns how many values it sealed.
//
// events are written in the same transaction (domain.Resealer).
func (s *SealedKeys) Reseal(ctx context.Context, r domain.Resealer, events ...*domain.AuditEvent) (int, error) {
	return r.RewriteSealed(ctx, func(v domain.SealedValue) ([]byte, error) {
		row := rowOf(v.Kind, v.Name)
		plain, err := s.open(v.Value, row)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", strings.ReplaceAll(string(v.Kind), "_", " "), v.Name, err)
		}
		return s.seal(plain, row)
	}, events...)
}

// IsSealed reports whether a stored value is sealed: a process without the
// key-encryption key must refuse to start rather than misread it.
func IsSealed(value []byte) bool { return bytes.HasPrefix(value, sealedPrefix) }

// SigningKeys implements domain.Keys.
func (s *SealedKeys) SigningKeys(ctx context.Context) ([]*domain.SigningKey, error) {
	keys, err := s.keys.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*domain.SigningKey, len(keys))
	for i, k := range keys {
		der, err := s.open(k.PrivateDER, rowOf(domain.SealedSigningKey, k.ID))
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
		}
		c := *k
		c.PrivateDER = der
		out[i] = &c
	}
	return out, nil
}

// AddSigningKey implements domain.Keys.
func (s *SealedKeys) AddSigningKey(ctx context.Context, k *domain.SigningKey, ifNoneSince time.Time, events ...*domain.AuditEvent) (bool, error) {
	sealed, err := s.seal(k.PrivateDER, rowOf(domain.SealedSigningKey, k.ID))
	if err != nil {
		return false, err
	}
	c := *k
	c.PrivateDER = sealed
	return s.keys.AddSigningKey(ctx, &c, ifNoneSince, events...)
}

// DeleteSigningKeys implements domain.Keys.
func (s *SealedKeys) DeleteSigningKeys(ctx context.Context, ids []string, events ...*domain.AuditEvent) error {
	return s.keys.DeleteSigningKeys(ctx, ids, events...)
}

// Secret implements domain.Keys.
func (s *SealedKeys) Secret(ctx context.Context, name string, value []byte) ([]byte, error) {
	sealed, err := s.seal(value, rowOf(domain.SealedSecret, name))
	if err != nil {
		return nil, err
	}
	stored, err := s.keys.Secret(ctx, name, sealed)
	if err != nil {
		return nil, err
	}
	plain, err := s.open(stored, rowOf(domain.SealedSecret, name))
	if err != nil {
		return nil, fmt.Errorf("server secret %s: %w", name, err)
	}
	return plain, nil
}
