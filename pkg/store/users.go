package store

import (
	"context"
	"slices"

	"gorm.io/gorm"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// CreateUser implements domain.Users. A machine user is inserted in a
// transaction that holds its owner's row: its quota is checked there, so
// concurrent creates cannot pass it together, and an owner being deleted
// cannot leave it behind.
func (s *Store) CreateUser(ctx context.Context, u *domain.User, maxOwned int, events ...*domain.AuditEvent) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	row := userToRow(u)
	if u.OwnerID == "" {
		// In a transaction only to be run again if it loses a conflict
		// (on Galera, another node's insert of the same username).
		return classify(s.transaction(db, func(tx *gorm.DB) error {
			if err := tx.Create(row).Error; err != nil {
				return err
			}
			return insertAuditEvents(tx, events)
		}), "user")
	}
	release, err := s.takeUserTurn(db, u.OwnerID)
	if err != nil {
		return classify(err, "user")
	}
	defer release()
	err = s.transaction(db, func(tx *gorm.DB) error {
		// The events first, before the owner's row is held (see CreateToken).
		if err := insertAuditEvents(tx, events); err != nil {
			return err
		}
		if err := s.lockUser(tx, u.OwnerID); err != nil {
			return err
		}
		if maxOwned > 0 {
			var n int64
			if err := tx.Model(&userRow{}).Where("owner_id = ?", u.OwnerID).Count(&n).Error; err != nil {
				return err
			}
			if n >= int64(maxOwned) {
				return domain.ErrLimitReached
			}
		}
		return tx.Create(row).Error
	})
	return classify(err, "user")
}

var errUserNotFound = domain.Errorf(domain.KindNotFound, "user not found")

// lockUser takes the user's row for the rest of the transaction, or returns
// not found. On MySQL it writes the row (lock_version), which waits for any
// other transaction holding it, and which a multi-primary cluster (Galera)
// certifies against another node's write of the same row, where a read FOR
// UPDATE would lock one node only; the plain reads that follow then see
// what those committed (InnoDB takes a transaction's snapshot at its first
// non-locking read, which comes after the lock). On a cluster, callers
// take the user's turn in this replica first (takeUserTurn), so that its
// own writes of the row queue in memory rather than lose certification to
// each other. A SQLite transaction has the database to itself.
func (s *Store) lockUser(tx *gorm.DB, id string) error {
	if s.driver == DriverMySQL {
		res := tx.Exec("UPDATE users SET lock_version = lock_version + 1 WHERE id = ?", id)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errUserNotFound
		}
		return nil
	}
	var got []string
	if err := tx.Raw("SELECT id FROM users WHERE id = ?", id).Scan(&got).Error; err != nil {
		return err
	}
	if len(got) == 0 {
		return errUserNotFound
	}
	return nil
}

// UserByID implements domain.Users.
func (s *Store) UserByID(ctx context.Context, id string) (*domain.User, error) {
	return s.userWhere(ctx, "id = ?", id)
}

// UserByUsername implements domain.Users.
func (s *Store) UserByUsername(ctx context.Context, username string) (*domain.User, error) {
	return s.userWhere(ctx, "username = ?", username)
}

func (s *Store) userWhere(ctx context.Context, cond string, arg string) (*domain.User, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var r userRow
	if err := db.Where(cond, arg).Take(&r).Error; err != nil {
		return nil, classify(err, "user")
	}
	return r.toDomain(), nil
}

// ListUsers implements domain.Users with keyset pagination on
// (create_time, id), like ListTokens.
func (s *Store) ListUsers(ctx context.Context, q domain.UserQuery) ([]*domain.User, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	if q.VisibleTo != "" {
		db = db.Where("(id = ? OR owner_id = ?)", q.VisibleTo, q.VisibleTo)
	}
	if q.Username != "" {
		db = db.Where("username = ?", q.Username)
	}
	db, order := keyset(db, q.After, false)
	var rows []userRow
	if err := db.Order(order).Limit(q.Limit).Find(&rows).Error; err != nil {
		return nil, classify(err, "user")
	}
	users := make([]*domain.User, len(rows))
	for i := range rows {
		users[i] = rows[i].toDomain()
	}
	return users, nil
}

// SetPasswordHash implements domain.Users.
func (s *Store) SetPasswordHash(ctx context.Context, userID, hash string, events ...*domain.AuditEvent) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	var changed int64
	err := s.transaction(db, func(tx *gorm.DB) error {
		res := tx.Model(&userRow{}).Where("id = ?", userID).Update("password_hash", nullString(hash))
		changed = res.RowsAffected
		if res.Error != nil || changed == 0 {
			return res.Error
		}
		// A new password ends the console's sessions: whoever held the
		// old one may hold one of them.
		if err := tx.Where("user_id = ?", userID).Delete(&sessionRow{}).Error; err != nil {
			return err
		}
		if err := insertAuditEvents(tx, events); err != nil {
			return err
		}
		return recordChanges(tx, domain.ChangedUser, userID)
	})
	if err == nil && changed == 0 {
		return domain.Errorf(domain.KindNotFound, "user not found")
	}
	return classify(err, "user")
}

// DeleteUser implements domain.Users. It holds the user's row first, so a
// machine user or token being created for it meanwhile is either deleted
// too or refused. With an event (the user's deletion), it writes one more
// for each machine user and token deleted with it (domain.AuditEvent.Cascade).
func (s *Store) DeleteUser(ctx context.Context, id string, events ...*domain.AuditEvent) ([]string, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	release, err := s.takeUserTurn(db, id)
	if err != nil {
		return nil, classify(err, "user")
	}
	defer release()
	if err := s.purgeDeletedTokens(db, id); err != nil {
		return nil, classify(err, "user")
	}
	var ids []string
	err = s.transaction(db, func(tx *gorm.DB) error {
		if err := s.lockUser(tx, id); err != nil {
			return err
		}
		var owned []userRow
		if err := tx.Where("owner_id = ?", id).Find(&owned).Error; err != nil {
			return err
		}
		ids = []string{id}
		for _, u := range owned {
			ids = append(ids, u.ID)
		}
		if len(events) > 0 {
			cascade, err := deletionEvents(tx, events[0], ids, owned)
			if err != nil {
				return err
			}
			events = append(slices.Clip(events), cascade...)
		}
		if err := tx.Where("user_id IN ?", ids).Delete(&tokenRow{}).Error; err != nil {
			return err
		}
		if err := tx.Where("user_id IN ?", ids).Delete(&federatedCredentialRow{}).Error; err != nil {
			return err
		}
		if err := tx.Where("id IN ?", ids).Delete(&userRow{}).Error; err != nil {
			return err
		}
		if err := insertAuditEvents(tx, events); err != nil {
			return err
		}
		return recordChanges(tx, domain.ChangedUser, ids...)
	})
	if err != nil {
		return nil, classify(err, "user")
	}
	// Then, outside the deletion's transaction (which runs against every
	// create of its users' tokens and machine users, and must stay as
	// short): their console sessions and their links to the identity
	// provider. Neither outlives its user in effect: a session of a user
	// who is gone is refused and dropped at its next use, a link to one is
	// replaced by the next sign-in (CreateExternalUser).
	db.Where("user_id IN ?", ids).Delete(&sessionRow{})
	db.Where("user_id IN ?", ids).Delete(&identityRow{})
	return ids, nil
}

// deletionEvents returns the events of what a user's deletion (of which
// ev is the event) deletes with it: its machine users (owned), and the
// tokens, not deleted already, and the federated credentials of all the
// users deleted (ids).
func deletionEvents(tx *gorm.DB, ev *domain.AuditEvent, ids []string, owned []userRow) ([]*domain.AuditEvent, error) {
	var tokens []struct{ ID, UserID string }
	if err := tx.Model(&tokenRow{}).Select("id, user_id").Where("user_id IN ? AND delete_time IS NULL", ids).Order("id").Find(&tokens).Error; err != nil {
		return nil, err
	}
	var out []*domain.AuditEvent
	for _, u := range owned {
		out = append(out, ev.Cascade(domain.ActionMachineUserDelete, domain.SubjectUser(u.toDomain())))
	}
	for _, t := range tokens {
		subject := domain.AuditParty{UserID: t.UserID, TokenID: t.ID}
		if t.UserID == ev.Subject.UserID {
			subject.Username, subject.OwnerID = ev.Subject.Username, ev.Subject.OwnerID
		}
		for _, u := range owned {
			if u.ID == t.UserID {
				subject.Username, subject.OwnerID = u.Username, u.OwnerID.String
			}
		}
		out = append(out, ev.Cascade(domain.ActionTokenDelete, subject))
	}
	var creds []struct{ ID, UserID string }
	if err := tx.Model(&federatedCredentialRow{}).Select("id, user_id").Where("user_id IN ?", ids).Order("id").Find(&creds).Error; err != nil {
		return nil, err
	}
	for _, c := range creds {
		subject := domain.AuditParty{UserID: c.UserID, TokenID: c.ID}
		for _, u := range owned {
			if u.ID == c.UserID {
				subject.Username, subject.OwnerID = u.Username, u.OwnerID.String
			}
		}
		out = append(out, ev.Cascade(domain.ActionFederatedCredentialDelete, subject))
	}
	return out, nil
}

// purgeBatch bounds the token rows one statement of purgeDeletedTokens
// removes.
const purgeBatch = 500

// purgeDeletedTokens removes the rows of the deleted tokens of the user and
// of its machine users, purgeBatch at a time, each batch a statement of its
// own, before DeleteUser's transaction: a user can leave any number of
// them (the quota counts live tokens), and deleting them all in that one
// transaction made a write set that stalled every other node while it
// applied, and a transaction long enough to lose, again and again, to any
// stream of writes of the user's rows. No one writes a deleted token, so
// the batches conflict with nothing; the transaction is left the live
// tokens, at most the quota per user.
func (s *Store) purgeDeletedTokens(db *gorm.DB, id string) error {
	var users []string
	if err := db.Model(&userRow{}).Where("id = ? OR owner_id = ?", id, id).Pluck("id", &users).Error; err != nil {
		return err
	}
	for {
		var batch []string
		err := db.Model(&tokenRow{}).Where("user_id IN ? AND delete_time IS NOT NULL", users).
			Limit(purgeBatch).Pluck("id", &batch).Error
		if err != nil || len(batch) == 0 {
			return err
		}
		if err := db.Where("id IN ? AND delete_time IS NOT NULL", batch).Delete(&tokenRow{}).Error; err != nil {
			return err
		}
	}
}
