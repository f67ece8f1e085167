package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestUserTurns checks that a user's turn is taken by one caller at a time,
// that no other user's waits for it (a flood of one user's writes holds up
// no one else), that a caller waiting for a turn gives up when its context
// ends, and that no turn is kept once no one holds or waits for it.
func TestUserTurns(t *testing.T) {
	turns := newUserTurns()
	ctx := context.Background()
	release, err := turns.take(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		other, cancel := context.WithTimeout(ctx, time.Second)
		releaseOther, err := turns.take(other, fmt.Sprintf("user%d", i))
		cancel()
		if err != nil {
			t.Fatalf("user%d's turn waited for alice's: %v", i, err)
		}
		releaseOther()
	}

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
	turns.mu.Lock()
	defer turns.mu.Unlock()
	if len(turns.turns) != 0 {
		t.Errorf("%d turns kept with no one holding or waiting", len(turns.turns))
	}
}
