package store

import (
	"context"

	"gorm.io/gorm"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// CreateUser implements domain.Users.
func (s *Store) CreateUser(ctx context.Context, u *domain.User) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	return classify(db.Create(userToRow(u)).Error, "user")
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

// ListUsers implements domain.Users.
func (s *Store) ListUsers(ctx context.Context) ([]*domain.User, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var rows []userRow
	if err := db.Order("username").Find(&rows).Error; err != nil {
		return nil, classify(err, "user")
	}
	users := make([]*domain.User, len(rows))
	for i := range rows {
		users[i] = rows[i].toDomain()
	}
	return users, nil
}

// SetPasswordHash implements domain.Users.
func (s *Store) SetPasswordHash(ctx context.Context, userID, hash string) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	res := db.Model(&userRow{}).Where("id = ?", userID).Update("password_hash", nullString(hash))
	if res.Error == nil && res.RowsAffected == 0 {
		return domain.Errorf(domain.KindNotFound, "user not found")
	}
	return classify(res.Error, "user")
}

// DeleteUser implements domain.Users.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	err := db.Transaction(func(tx *gorm.DB) error {
		ids := []string{id}
		var owned []string
		if err := tx.Model(&userRow{}).Where("owner_id = ?", id).Pluck("id", &owned).Error; err != nil {
			return err
		}
		ids = append(ids, owned...)
		if err := tx.Where("user_id IN ?", ids).Delete(&tokenRow{}).Error; err != nil {
			return err
		}
		if err := tx.Where("id IN ?", owned).Delete(&userRow{}).Error; err != nil {
			return err
		}
		res := tx.Where("id = ?", id).Delete(&userRow{})
		if res.Error == nil && res.RowsAffected == 0 {
			return gorm.ErrRecordNotFound
		}
		return res.Error
	})
	return classify(err, "user")
}
