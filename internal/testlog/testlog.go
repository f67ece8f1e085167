// Package testlog holds what a logger writes, for tests: a buffer the code
// under test may write to from its goroutines while the test reads it. It
// is internal: a test helper of this module, not part of its API.
package testlog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer safe for concurrent use: a server's goroutines
// (or a verifier's background refresh) write log lines while the test
// reads them. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// JSONLines returns the lines written so far that are JSON objects,
// decoded; any other line (text, or a last line still being written) is
// left out.
func (b *Buffer) JSONLines() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m != nil {
			out = append(out, m)
		}
	}
	return out
}

// NewJSON returns a logger that writes JSON lines at level and above to a
// new Buffer, and the Buffer.
func NewJSON(level slog.Leveler) (*slog.Logger, *Buffer) {
	b := &Buffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: level})), b
}
