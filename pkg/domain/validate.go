package domain

import (
	"regexp"
	"unicode/utf8"
)

// Password bounds: long enough to matter (NIST SP 800-63B's minimum), short
// enough that hashing stays bounded.
const (
	MinPasswordLen   = 8
	MaxPasswordBytes = 1024
)

var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)

// ValidateUsername returns a KindInvalid error unless name is 1 to 64 of
// a-z 0-9 . _ @ -, starting with a letter or digit.
func ValidateUsername(name string) error {
	if !usernamePattern.MatchString(name) {
		return Errorf(KindInvalid, "username must be 1 to 64 of a-z 0-9 . _ @ -, starting with a letter or digit")
	}
	return nil
}

// ValidatePassword returns a KindInvalid error unless the password has at
// least MinPasswordLen characters and at most MaxPasswordBytes bytes.
func ValidatePassword(p string) error {
	if utf8.RuneCountInString(p) < MinPasswordLen || len(p) > MaxPasswordBytes {
		return Errorf(KindInvalid, "password must have at least %d characters and at most %d bytes", MinPasswordLen, MaxPasswordBytes)
	}
	return nil
}
