package main

import (
	"strings"
	"testing"

	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

func TestSafe(t *testing.T) {
	for in, want := range map[string]string{
		"laptop":                "laptop",
		"café – ünïcode":        "café – ünïcode",
		`C:\path`:               `C:\path`,
		"\x1b[2J\x1b]0;pwned\a": `\x1b[2J\x1b]0;pwned\a`,
		"a\r\nfake\trow\x00":    `a\r\nfake\trow\x00`,
		"evil\u202egpj.exe":     `evil\u202egpj.exe`,
		"\u009b31m":             `\u009b31m`,
		"\x9b":                  `\x9b`,
		"bad\xffutf8":           `bad\xffutf8`,
		"ci 👩\u200d💻\u00a0ok":   "ci 👩\u200d💻\u00a0ok", // what the API accepts prints as it is
		"zero\u200bwidth":       `zero\u200bwidth`,
		"line\u2028sep":         `line\u2028sep`,
	} {
		if got := safe(in); got != want {
			t.Errorf("safe(%q) = %q, want %q", in, got, want)
		}
	}
}

// Text that reached the database some other way than the API (which refuses
// control characters) is printed escaped: an ESC, a CR or an LF in a note or
// a username can neither drive the terminal nor fake a table row.
func TestStoredTextCannotDriveTheTerminal(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver), "TOKENSERVICE_CACHE_TTL", "0")
		s.mustUser(t, "alice", "admin")
		s.mustUser(t, "bot", "machine:alice")
		sh := s.newShell(t)
		sh.must(password+"\n", "login", "alice")
		sh.must("", "token", "create", "--note", "plain")
		db := s.openDB(t)
		const note = "\x1b[2J\x1b]0;owned\a\r\nfake-id  fake-note"
		if _, err := db.Exec("UPDATE tokens SET note = ? WHERE note = ?", note, "plain"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("UPDATE users SET username = ? WHERE username = ?", "bot\x1b[31m\nroot", "bot"); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"token", "list"}, {"user", "list"}, {"db", "list-users"}} {
			sh := sh
			if args[0] == "db" {
				sh = &shell{t: t, env: s.env}
			}
			out := sh.must("", args...)
			if strings.ContainsAny(out, "\x1b\a\r") {
				t.Errorf("%s printed raw control characters: %q", strings.Join(args, " "), out)
			}
			for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				if strings.HasPrefix(line, "fake-id") || strings.HasPrefix(line, "root") {
					t.Errorf("%s printed a row the stored text made up: %q", strings.Join(args, " "), out)
				}
			}
		}
		if out := sh.must("", "token", "list"); !strings.Contains(out, `\x1b[2J\x1b]0;owned\a\r\nfake-id`) {
			t.Errorf("token list does not show the note escaped:\n%s", out)
		}
		if out := sh.must("", "user", "list"); !strings.Contains(out, `bot\x1b[31m\nroot`) {
			t.Errorf("user list does not show the username escaped:\n%s", out)
		}
	})
}
