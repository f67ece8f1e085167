package main

import (
	"context"
	"testing"
	"time"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// last_used_time follows exchanges and bearer uses, within the flush
// interval and, in GetToken, which reads through the cache, its max age.
func TestLastUsedTime(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver), "TOKENSERVICE_LAST_USED_FLUSH_INTERVAL", "200ms",
			"TOKENSERVICE_CACHE_TTL", "1s", "TOKENSERVICE_CACHE_MAX_AGE", "1s")
		s.mustUser(t, "alice", "human")
		for _, c := range s.callers(t) {
			t.Run(c.name, func(t *testing.T) {
				a := rpc{t: t, c: c}
				owner := a.login("alice")
				exchanged := a.mustCreate(owner, &pb.CreateTokenRequest{Note: "exchanged"}).GetToken()
				bearer := a.mustCreate(owner, &pb.CreateTokenRequest{Note: "bearer"}).GetToken()
				unused := a.mustCreate(owner, &pb.CreateTokenRequest{Note: "unused"}).GetToken()
				time.Sleep(400 * time.Millisecond) // the owner's own uses flushed

				before := time.Now().Truncate(time.Second)
				if _, err := a.exchange("", exchanged); err != nil {
					t.Fatal(err)
				}
				if _, err := a.get(bearer, idOf(bearer)); err != nil {
					t.Fatal(err)
				}
				after := time.Now()
				for _, tok := range []string{exchanged, bearer} {
					deadline := time.Now().Add(5 * time.Second)
					for {
						resp, err := a.get(owner, idOf(tok))
						if err != nil {
							t.Fatal(err)
						}
						if lu := resp.GetToken().GetLastUsedTime(); lu != nil {
							if got := lu.AsTime(); got.Before(before) || got.After(after) {
								t.Errorf("last used %v, want within [%v, %v]", got, before, after)
							}
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("last_used_time not set 5s after a use (flush interval 200ms, cache max age 1s)")
						}
						time.Sleep(50 * time.Millisecond)
					}
				}
				resp, err := a.get(owner, idOf(unused))
				if err != nil {
					t.Fatal(err)
				}
				if lu := resp.GetToken().GetLastUsedTime(); lu != nil {
					t.Errorf("a never-used token has last_used_time %v", lu.AsTime())
				}
			})
		}
	})
}

// Uses not yet flushed are written at shutdown.
func TestLastUsedTimeIsFlushedAtShutdown(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver), "TOKENSERVICE_LAST_USED_FLUSH_INTERVAL", "1h")
		s.mustUser(t, "alice", "human")
		a := rpc{t: t, c: s.grpcCaller()}
		tok := a.login("alice")
		if _, err := a.exchange("", tok); err != nil {
			t.Fatal(err)
		}
		if err := s.shutdown(); err != nil {
			t.Fatal(err)
		}
		db := s.openDB(t)
		var n int
		if err := db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM tokens WHERE id = ? AND last_used_time IS NOT NULL", idOf(tok)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Error("the use was not written at shutdown")
		}
	})
}
