// Package pagetoken makes the opaque page tokens of keyset-paginated
// listings: a position (create time, id), MACed with a server secret shared by
// every replica and bound to the query it came from, so a forged token, or one
// replayed against another query, is refused.
package pagetoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// Layout before base64url: version(1) | create_time µs (8) | id (IDLen) | MAC (16),
// the MAC over all before it and the query.
const (
	version = 2 // 1 bound only the tokens listing's user and direction
	// IDLen is the length of the ids a cursor holds.
	IDLen    = 16
	bodyLen  = 1 + 8 + IDLen
	tokenLen = bodyLen + 16
)

// SecretName is the server secret the MAC key is kept under, shared by every
// replica on one database.
const SecretName = "page_token_mac"

// Codec encodes and decodes page tokens. Its key is set once the server
// secrets are read (SetKey); using it before is a programming error and panics.
type Codec struct {
	key atomic.Pointer[[]byte]
}

// New returns a Codec without a key: call SetKey before using it.
func New() *Codec { return &Codec{} }

// NewWithKey returns a Codec MACing with key.
func NewWithKey(key []byte) *Codec {
	c := New()
	c.SetKey(key)
	return c
}

// SetKey sets the MAC key.
func (c *Codec) SetKey(key []byte) { c.key.Store(&key) }

var errBadPageToken = domain.InvalidField("page_token", "must be the next page token of a previous response to the same query (the same filters and direction)")

// Encode returns the page token for position c in the query, which names
// the listing and every parameter a page token must not outlive (say
// "tokens", the user ID and the direction).
func (c *Codec) Encode(cur domain.Cursor, query ...string) string {
	buf := make([]byte, tokenLen)
	buf[0] = version
	binary.BigEndian.PutUint64(buf[1:9], uint64(cur.CreateTime.UnixMicro()))
	copy(buf[9:bodyLen], cur.ID)
	copy(buf[bodyLen:], c.mac(buf[:bodyLen], query))
	return base64.RawURLEncoding.EncodeToString(buf)
}

// Decode returns the position a page token holds, or an invalid-argument
// error if Encode did not make it for this query.
func (c *Codec) Decode(token string, query ...string) (*domain.Cursor, error) {
	buf, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(buf) != tokenLen || buf[0] != version {
		return nil, errBadPageToken
	}
	if !hmac.Equal(buf[bodyLen:], c.mac(buf[:bodyLen], query)) {
		return nil, errBadPageToken
	}
	return &domain.Cursor{
		CreateTime: time.UnixMicro(int64(binary.BigEndian.Uint64(buf[1:9]))).UTC(),
		ID:         string(buf[9:bodyLen]),
	}, nil
}

func (c *Codec) mac(body []byte, query []string) []byte {
	key := c.key.Load()
	if key == nil {
		panic("pagetoken: Codec used before SetKey")
	}
	m := hmac.New(sha256.New, *key)
	m.Write(body)
	for _, q := range query {
		// Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(q)))
		m.Write(n[:])
		m.Write([]byte(q))
	}
	return m.Sum(nil)[:16]
}

// Page sizes, as AIP-158 has them: 0 asks for the default; more than the
// maximum gets the maximum.
const (
	DefaultPageSize = 50
	MaxPageSize     = 250
)

// ClampPageSize turns a requested page size into the one served.
func ClampPageSize(n int) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return n
}

// List reads one page of a listing kept in (create time, id) order: up to
// pageSize items (clamped) after the position pageToken holds (from the
// start if it is empty), and the token of the next page ("" on the last).
// query binds the page tokens to the listing and its parameters. read
// returns up to limit items after a cursor (nil: from the start); position
// gives an item's cursor.
func List[T any](c *Codec, pageSize int, pageToken string, query []string,
	read func(after *domain.Cursor, limit int) ([]T, error), position func(T) domain.Cursor) ([]T, string, error) {
	size := ClampPageSize(pageSize)
	var after *domain.Cursor
	if pageToken != "" {
		var err error
		if after, err = c.Decode(pageToken, query...); err != nil {
			return nil, "", err
		}
	}
	items, err := read(after, size+1) // one more tells whether a next page exists
	if err != nil {
		return nil, "", err
	}
	if len(items) <= size {
		return items, "", nil
	}
	items = items[:size]
	return items, c.Encode(position(items[size-1]), query...), nil
}
