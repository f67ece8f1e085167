package cache

import (
	"context"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// A cached token keeps no part of the request that named it, and the
// tokens of one user share its ID and their scope set (issue 22: a fleet's
// bytes per cached token).
func TestCachedTokensShareWhatTheyHaveInCommon(t *testing.T) {
	st := storetest.MustOpen(t, "sqlite")
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	u := &domain.User{ID: "uuuuuuuuuuuuuuuu", Username: "alice", CreateTime: now}
	if err := st.CreateUser(ctx, u, 0); err != nil {
		t.Fatal(err)
	}
	ids := []string{"tttttttttttttttt", "ssssssssssssssss"}
	for _, id := range ids {
		tok := &domain.Token{ID: id, UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: now,
			Scopes: domain.NewScopes("tokens:read", "orders:read")}
		if err := st.CreateToken(ctx, tok, 0); err != nil {
			t.Fatal(err)
		}
	}
	c := New(st, Config{TTL: time.Hour, Size: 10}, func() time.Time { return now }, nil)
	// Each ID read out of a request, as a bearer's parsed ID is.
	request := "Bearer " + strings.Join(ids, "_") + "_and the rest of a request"
	var got []*domain.Token
	for i := range ids {
		id := request[len("Bearer ")+i*17:][:16]
		tok, err := c.TokenByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tok)
	}
	start := uintptr(unsafe.Pointer(unsafe.StringData(request)))
	for _, key := range c.tokens.Keys() {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(key))); p >= start && p < start+uintptr(len(request)) {
			t.Errorf("the cache's key %q is part of the request: the request lives as long as the entry", key)
		}
	}
	if unsafe.StringData(got[0].UserID) != unsafe.StringData(got[1].UserID) {
		t.Error("two tokens of one user hold a copy of its ID each")
	}
	if &got[0].Scopes[0] != &got[1].Scopes[0] {
		t.Error("two tokens with the same scopes hold a copy of the set each")
	}
}
