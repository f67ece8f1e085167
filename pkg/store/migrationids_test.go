package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// AppliedMigrations says what a database has: none when fresh, those a
// partial migration applied, then every one of MigrationIDs.
func TestAppliedMigrations(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s, err := store.Open(storetest.MustConfig(t, driver))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		all := store.MigrationIDs()
		if len(all) < 3 || !slices.IsSorted(all) {
			t.Fatalf("MigrationIDs() = %v: want them oldest first", all)
		}
		for _, step := range []struct {
			to   string
			want []string
		}{
			{"", nil},
			{all[2], all[:3]},
			{all[len(all)-1], all},
		} {
			if step.to != "" {
				if err := s.MigrateTo(ctx, step.to); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.AppliedMigrations(ctx)
			if err != nil || !slices.Equal(got, step.want) {
				t.Errorf("after migrating to %q: AppliedMigrations() = %v, %v; want %v", step.to, got, err, step.want)
			}
		}
	})
}
