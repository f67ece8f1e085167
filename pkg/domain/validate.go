package domain

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Password bounds: long enough to matter (NIST SP 800-63B's minimum), short
// enough that hashing stays bounded.
const (
	MinPasswordLen   = 8
	MaxPasswordBytes = 1024
)

// ReservedUsername is the API's and the CLI's name for the caller (GET
// /v1alpha1/users/me, tokenservice user get me): no user may take it.
const ReservedUsername = "me"

var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)

// NormalizeUsername returns name in the one form usernames are kept and
// compared in: lower case, so "Alice" and "alice" are one user. It returns a
// KindInvalid error unless that is 1 to 64 of a-z 0-9 . _ @ -, starting with
// a letter or digit.
func NormalizeUsername(name string) (string, error) {
	// ASCII only: strings.ToLower would also fold, say, the Kelvin sign into "k".
	lower := strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, name)
	if !usernamePattern.MatchString(lower) {
		return "", InvalidField("username", "must be 1 to 64 of a-z 0-9 . _ @ - (upper case is taken as lower case), starting with a letter or digit")
	}
	if lower == ReservedUsername {
		return "", InvalidField("username", "%q is reserved: it names the caller", ReservedUsername)
	}
	return lower, nil
}

// ValidatePassword returns a KindInvalid error about field unless the
// password has at least MinPasswordLen characters and at most
// MaxPasswordBytes bytes.
func ValidatePassword(field, p string) error {
	if utf8.RuneCountInString(p) < MinPasswordLen || len(p) > MaxPasswordBytes {
		return InvalidField(field, "must have at least %d characters and at most %d bytes", MinPasswordLen, MaxPasswordBytes)
	}
	return nil
}

// CheckText returns a KindInvalid error about field if s holds a control
// character (Unicode's Cc: C0, DEL and C1, newlines and tabs included), a
// line or paragraph separator (U+2028, U+2029), a bidirectional control
// (Unicode's Bidi_Control, U+202E and the like: they reorder what follows,
// as in "Trojan Source", CVE-2021-42574) or is not valid UTF-8: free text is
// shown in terminals and tables, where such characters would move the
// cursor, recolour the screen, forge rows or disguise a name. Other format
// characters (the zero-width joiner of an emoji sequence) pass.
func CheckText(field, s string) error {
	if !utf8.ValidString(s) {
		return InvalidField(field, "must be valid UTF-8 text")
	}
	for _, r := range s {
		switch {
		case unicode.IsControl(r), r == '\u2028', r == '\u2029':
			return InvalidField(field, "must not contain control characters (such as newlines, tabs or escape sequences): one line of plain text")
		case unicode.Is(unicode.Bidi_Control, r):
			return InvalidField(field, "must not contain bidirectional controls (U+202E and the like), which reorder how text is shown")
		}
	}
	return nil
}
