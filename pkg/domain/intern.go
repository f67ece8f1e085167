package domain

import (
	"sync"
	"unique"
)

// Interning lets the caches of a fleet hold one copy of what many of its
// tokens share (the user, the key, the audience, the scope set) instead of
// one per token: issue 22's bytes per cached token.

// Intern returns the canonical copy of s: equal strings interned share
// their bytes. The copy lives while something holds it (package unique).
func Intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// maxScopeSets bounds the scope sets Interned keeps: scopes are the
// service's and the operator's, so a fleet holds few distinct sets; past
// the bound a set is returned as it is.
const maxScopeSets = 4096

var scopeSets = struct {
	sync.RWMutex
	m map[string]Scopes
}{m: make(map[string]Scopes)}

// Interned returns a Scopes equal to s that every equal set interned shares.
// Like every Scopes, it must not be changed in place.
func (s Scopes) Interned() Scopes {
	if len(s) == 0 {
		return nil
	}
	key := s.String()
	scopeSets.RLock()
	shared, ok := scopeSets.m[key]
	scopeSets.RUnlock()
	if ok {
		return shared
	}
	scopeSets.Lock()
	defer scopeSets.Unlock()
	if shared, ok := scopeSets.m[key]; ok {
		return shared
	}
	if len(scopeSets.m) >= maxScopeSets {
		return s
	}
	shared = make(Scopes, len(s))
	for i, name := range s {
		shared[i] = Intern(name)
	}
	scopeSets.m[Intern(key)] = shared
	return shared
}
