package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"hash/crc32"
	"io"
	"strings"
)

// The API token format:
//
//	tks_<id: 16 base62>_<secret: 43 base62><checksum: 6 base62>
//
// The prefix makes tokens recognizable to people and secret scanners, the id is
// the token's public ID, the secret carries 256 random bits (43 base62 digits),
// and the checksum (CRC-32 of everything before it) rejects a mistyped or
// truncated token before any database read. A secret scanner matches
// TokenPattern.
const (
	TokenPrefix  = "tks_"
	IDLen        = 16
	SecretLen    = 43
	checksumLen  = 6
	TokenLen     = len(TokenPrefix) + IDLen + 1 + SecretLen + checksumLen
	TokenPattern = `\btks_[0-9A-Za-z]{16}_[0-9A-Za-z]{49}\b`
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// APIToken is a parsed plaintext API token.
type APIToken struct {
	ID     string
	Secret string
}

// String returns the plaintext form of t, checksum included.
func (t APIToken) String() string {
	var b strings.Builder
	b.Grow(TokenLen)
	b.WriteString(TokenPrefix)
	b.WriteString(t.ID)
	b.WriteByte('_')
	b.WriteString(t.Secret)
	body := b.String()
	b.WriteString(encodeChecksum(crc32.ChecksumIEEE([]byte(body))))
	return b.String()
}

// NewAPIToken returns a token with a fresh random ID and secret from rnd
// (crypto/rand.Reader in production).
func NewAPIToken(rnd io.Reader) (APIToken, error) {
	id, err := RandomID(rnd)
	if err != nil {
		return APIToken{}, err
	}
	secret, err := randomBase62(rnd, SecretLen)
	if err != nil {
		return APIToken{}, err
	}
	return APIToken{ID: id, Secret: secret}, nil
}

// ParseAPIToken parses a plaintext token. ok is false for anything that is
// not a well-formed token with a valid checksum; it does no I/O.
func ParseAPIToken(s string) (t APIToken, ok bool) {
	if len(s) != TokenLen || !strings.HasPrefix(s, TokenPrefix) {
		return APIToken{}, false
	}
	rest := s[len(TokenPrefix):]
	if rest[IDLen] != '_' {
		return APIToken{}, false
	}
	id, secret := rest[:IDLen], rest[IDLen+1:IDLen+1+SecretLen]
	if !isBase62(id) || !isBase62(secret) {
		return APIToken{}, false
	}
	body := s[:len(s)-checksumLen]
	want := encodeChecksum(crc32.ChecksumIEEE([]byte(body)))
	if s[len(s)-checksumLen:] != want {
		return APIToken{}, false
	}
	return APIToken{ID: id, Secret: secret}, true
}

// LooksLikeAPIToken reports whether s has the API token prefix, to tell it
// from an access token; it says nothing of validity.
func LooksLikeAPIToken(s string) bool { return strings.HasPrefix(s, TokenPrefix) }

// HashSecret returns the stored form of a secret: its SHA-256. The secret has
// 256 random bits, so a fast hash is as safe as a slow one here and keeps
// token checks cheap.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// SecretMatches compares a secret against a stored hash in constant time.
func SecretMatches(secret string, hash []byte) bool {
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(sum[:], hash) == 1
}

// RandomID returns a random 16-digit base62 ID (about 95 bits), the form of
// token and user IDs.
func RandomID(rnd io.Reader) (string, error) { return randomBase62(rnd, IDLen) }

// randomBase62 draws n uniform base62 digits from rnd by rejection sampling:
// bytes of 248 and above are dropped, so byte%62 is unbiased.
func randomBase62(rnd io.Reader, n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		if _, err := io.ReadFull(rnd, buf); err != nil {
			return "", err
		}
		for _, c := range buf {
			if c < 248 && len(out) < n {
				out = append(out, base62[c%62])
			}
		}
	}
	return string(out), nil
}

func encodeChecksum(v uint32) string {
	var out [checksumLen]byte
	for i := checksumLen - 1; i >= 0; i-- {
		out[i] = base62[v%62]
		v /= 62
	}
	return string(out[:])
}

func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}
