package testlog_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenservice/tokenservice/internal/testlog"
)

// Lines written from many goroutines arrive whole, none lost, while the
// buffer is read: through a logger, and straight to the buffer (slog's
// handler serialises its own writes; the direct ones fail without the
// buffer's lock, under -race and, losing lines, without it).
func TestBufferTakesConcurrentWrites(t *testing.T) {
	logger, logs := testlog.NewJSON(slog.LevelInfo)
	const writers, lines = 8, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				logger.Info("line", "writer", w, "i", i)
				fmt.Fprintf(logs, "{\"writer\":%d,\"i\":%d}\n", w, i)
				_ = logs.String()
			}
		})
	}
	wg.Wait()
	if got := len(logs.JSONLines()); got != 2*writers*lines {
		t.Errorf("%d JSON lines, want %d", got, 2*writers*lines)
	}
}

// JSONLines decodes the JSON lines and leaves out the rest: text, and a
// last line still being written.
func TestJSONLinesSkipsWhatIsNotJSON(t *testing.T) {
	var b testlog.Buffer
	fmt.Fprintln(&b, `{"msg":"one","n":1}`)
	fmt.Fprintln(&b, `level=INFO msg=text`)
	fmt.Fprintln(&b, `null`)
	fmt.Fprintln(&b, `{"msg":"two"}`)
	fmt.Fprint(&b, `{"msg":"hal`)
	want := []map[string]any{{"msg": "one", "n": 1.0}, {"msg": "two"}}
	if diff := cmp.Diff(want, b.JSONLines()); diff != "" {
		t.Errorf("JSONLines (-want +got):\n%s", diff)
	}
	if !strings.HasSuffix(b.String(), `{"msg":"hal`) {
		t.Errorf("String = %q, want everything written", b.String())
	}
}

// NewJSON's level is the least it writes.
func TestNewJSONKeepsItsLevel(t *testing.T) {
	logger, logs := testlog.NewJSON(slog.LevelWarn)
	logger.Info("quiet")
	logger.Warn("loud")
	lines := logs.JSONLines()
	if len(lines) != 1 || lines[0]["msg"] != "loud" {
		t.Errorf("lines %v, want only the warning", lines)
	}
}
