package store

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// Deleting a user removes its deleted tokens' rows, and its machine users',
// purgeBatch at a time: never one statement, nor one transaction, over all
// of them (a user can leave any number; on Galera one huge write set
// stalled every node applying it, and lost every race with the user's
// other writes). The live tokens go in the transaction with the users.
func TestDeleteUserPurgesDeletedTokensInBatches(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	owner := &domain.User{ID: "owner00000000000", Username: "owner", CreateTime: now}
	bot := &domain.User{ID: "bot0000000000000", Username: "bot", OwnerID: owner.ID, CreateTime: now}
	bystander := &domain.User{ID: "bystander0000000", Username: "bystander", CreateTime: now}
	for _, u := range []*domain.User{owner, bot, bystander} {
		if err := s.CreateUser(ctx, u, 0); err != nil {
			t.Fatal(err)
		}
	}
	var rows []tokenRow
	add := func(userID string, n int, deleted bool) {
		for range n {
			r := tokenRow{ID: fmt.Sprintf("t%015d", len(rows)), UserID: userID, SecretHash: make([]byte, 32), CreateTime: now}
			if deleted {
				r.DeleteTime = sql.NullTime{Time: now, Valid: true}
			}
			rows = append(rows, r)
		}
	}
	add(owner.ID, 3*purgeBatch+7, true)
	add(bot.ID, purgeBatch+1, true)
	add(owner.ID, 3, false)
	add(bot.ID, 2, false)
	add(bystander.ID, 5, true)
	if err := s.db.CreateInBatches(rows, 200).Error; err != nil {
		t.Fatal(err)
	}

	largest := int64(0)
	if err := s.db.Callback().Delete().After("gorm:delete").Register("test:largest", func(db *gorm.DB) {
		if db.Statement.Table == "tokens" {
			largest = max(largest, db.RowsAffected)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteUser(ctx, owner.ID); err != nil {
		t.Fatal(err)
	}
	if largest > purgeBatch {
		t.Errorf("one statement deleted %d token rows, want at most %d", largest, purgeBatch)
	}
	var left []string
	if err := s.db.Model(&tokenRow{}).Order("user_id").Distinct().Pluck("user_id", &left).Error; err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != bystander.ID {
		t.Errorf("token rows left belong to %v, want only the bystander's", left)
	}
}
