package domain

import (
	"slices"
	"strings"
	"testing"
	"unsafe"
)

func TestInternedScopesAreShared(t *testing.T) {
	// Two sets made apart, as two tokens read from the database are.
	a := ParseScopes(strings.Clone("tokens:read orders:read"))
	b := ParseScopes(strings.Clone("orders:read tokens:read"))
	ia, ib := a.Interned(), b.Interned()
	if !slices.Equal(ia, a) || !slices.Equal(ib, b) {
		t.Fatalf("Interned changed the set: %v, %v", ia, ib)
	}
	if &ia[0] != &ib[0] {
		t.Error("equal sets interned are not shared")
	}
	if other := NewScopes("tokens:read").Interned(); &other[0] == &ia[0] {
		t.Error("a different set is shared with another")
	}
	if Scopes(nil).Interned() != nil {
		t.Error("an empty set interned is not nil")
	}
}

func TestInternSharesEqualStrings(t *testing.T) {
	a, b := Intern(strings.Clone("user-1")), Intern(strings.Clone("user-1"))
	if a != "user-1" || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Errorf("Intern: %q and %q not shared", a, b)
	}
}
