package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestUserTurns checks that a user's turn is taken by one caller at a time,
// that another user's (on another stripe) is not held by it, and that a
// caller waiting for a turn gives up when its context ends.
func TestUserTurns(t *testing.T) {
	turns := newUserTurns()
	ctx := context.Background()
	release, err := turns.take(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	other := "bob"
	for stripe(other) == stripe("alice") {
		other += "b"
	}
	releaseOther, err := turns.take(ctx, other)
	if err != nil {
		t.Fatalf("%s's turn waited for alice's: %v", other, err)
	}
	releaseOther()

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := turns.take(short, "alice"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second turn for alice while the first is held: %v, want the deadline", err)
	}

	got := make(chan struct{})
	go func() {
		r, err := turns.take(ctx, "alice")
		if err == nil {
			r()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("alice's turn was taken twice")
	case <-time.After(20 * time.Millisecond):
	}
	release()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("alice's turn was not passed on when released")
	}
}
