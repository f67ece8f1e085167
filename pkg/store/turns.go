package store

import (
	"context"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"
)

// userTurns lets one of this replica's transactions at a time write a
// given user's row (lockUser). The database would make them take turns
// anyway: on one MySQL they queue on the row lock, each holding a pooled
// connection meanwhile; on a multi-primary cluster (Galera), where the
// load balancer spreads a replica's connections over the nodes, they run
// at once on different nodes and all but one lose certification at
// commit, to run again after a backoff (tokenbench measured 2 to 3 lost
// attempts per CreateToken, 16 callers for one user, and some given up).
// Queued here, a replica's own writes of one user do not conflict with
// each other; only other replicas' can, and those the retry handles.
//
// Only on a cluster: on one MySQL the row lock hands the row from one
// transaction to the next inside the server, while a turn here is passed
// only after a commit's round trip and the next transaction's first
// statements, which cut CreateToken for one user from about 500 to 250 a
// second in tokenbench.
//
// Each user has a turn of its own, made when a caller first waits for it
// and dropped when the last is done: a caller flooding one user's creates
// delays only that user's, never another's (turns shared by a hash of the
// ID would let it hold up every user that hashed alike).
type userTurns struct {
	mu    sync.Mutex
	turns map[string]*turn
	// cluster is whether the database is a Galera cluster: 0 not known
	// yet, clusterNo, clusterYes.
	cluster atomic.Int32
}

const (
	clusterNo  = 1
	clusterYes = 2
)

// turn is one user's: held by the caller that put a token in it, waited
// for by the others it counts.
type turn struct {
	held    chan struct{} // capacity 1
	callers int           // holding or waiting; guarded by userTurns.mu
}

func newUserTurns() *userTurns { return &userTurns{turns: map[string]*turn{}} }

// takeUserTurn takes the user's turn in this replica (userTurns) if the
// database is a Galera cluster, and returns what ends it; a no-op
// elsewhere.
func (s *Store) takeUserTurn(db *gorm.DB, userID string) (release func(), err error) {
	if s.driver != DriverMySQL || !s.userTurns.onCluster(db) {
		return func() {}, nil
	}
	return s.userTurns.take(db.Statement.Context, userID)
}

// onCluster reports whether the database is a Galera cluster
// (wsrep_on), asking it the first time; a database that does not answer
// is asked again next time, and meanwhile taken for a single server.
func (t *userTurns) onCluster(db *gorm.DB) bool {
	switch t.cluster.Load() {
	case clusterYes:
		return true
	case clusterNo:
		return false
	}
	var on []int
	err := db.Raw("SELECT @@wsrep_on").Scan(&on).Error
	switch {
	case err == nil && len(on) == 1 && on[0] == 1:
		t.cluster.Store(clusterYes)
		return true
	case err == nil || unknownVariable(err):
		t.cluster.Store(clusterNo) // MariaDB without Galera, or MySQL
	}
	return false
}

// take waits for the user's turn, or until ctx ends, and returns what ends
// the turn.
func (t *userTurns) take(ctx context.Context, userID string) (release func(), err error) {
	t.mu.Lock()
	u := t.turns[userID]
	if u == nil {
		u = &turn{held: make(chan struct{}, 1)}
		t.turns[userID] = u
	}
	u.callers++
	t.mu.Unlock()
	done := func() {
		t.mu.Lock()
		if u.callers--; u.callers == 0 {
			delete(t.turns, userID)
		}
		t.mu.Unlock()
	}
	select {
	case u.held <- struct{}{}:
		return func() { <-u.held; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}
