package tokens

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// PageTokens encodes ListTokens cursors as opaque page tokens, MACed with a
// server secret and bound to the query (user and direction), so a forged
// token, or one reused with other parameters, is refused.
//
// Layout before base64url: version(1) | create_time µs (8) | id (16) | MAC (16),
// the MAC over version, query, time and id.
type PageTokens struct {
	key []byte
}

const (
	pageTokenVersion = 1
	pageTokenLen     = 1 + 8 + auth.IDLen + 16
)

// NewPageTokens returns a codec MACing with key (the same on every replica).
func NewPageTokens(key []byte) *PageTokens { return &PageTokens{key: key} }

var errBadPageToken = domain.Errorf(domain.KindInvalid, "invalid page_token: it must come from a previous response to the same query")

// Encode returns the page token for the position c in the query (userID, reverse).
func (p *PageTokens) Encode(c domain.Cursor, userID string, reverse bool) string {
	buf := make([]byte, pageTokenLen)
	buf[0] = pageTokenVersion
	binary.BigEndian.PutUint64(buf[1:9], uint64(c.CreateTime.UnixMicro()))
	copy(buf[9:9+auth.IDLen], c.ID)
	copy(buf[9+auth.IDLen:], p.mac(buf[:9+auth.IDLen], userID, reverse))
	return base64.RawURLEncoding.EncodeToString(buf)
}

// Decode returns the position a page token holds, or an invalid-argument
// error if it was not made by Encode for this query.
func (p *PageTokens) Decode(token, userID string, reverse bool) (*domain.Cursor, error) {
	buf, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(buf) != pageTokenLen || buf[0] != pageTokenVersion {
		return nil, errBadPageToken
	}
	body := buf[:9+auth.IDLen]
	if !hmac.Equal(buf[9+auth.IDLen:], p.mac(body, userID, reverse)) {
		return nil, errBadPageToken
	}
	return &domain.Cursor{
		CreateTime: time.UnixMicro(int64(binary.BigEndian.Uint64(buf[1:9]))).UTC(),
		ID:         string(buf[9 : 9+auth.IDLen]),
	}, nil
}

func (p *PageTokens) mac(body []byte, userID string, reverse bool) []byte {
	m := hmac.New(sha256.New, p.key)
	m.Write(body)
	m.Write([]byte(userID))
	if reverse {
		m.Write([]byte{1})
	} else {
		m.Write([]byte{0})
	}
	return m.Sum(nil)[:16]
}
