package store

import (
	"context"

	"gorm.io/gorm/clause"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// SigningKeys implements domain.Keys.
func (s *Store) SigningKeys(ctx context.Context) ([]*domain.SigningKey, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var rows []signingKeyRow
	if err := db.Order("create_time, id").Find(&rows).Error; err != nil {
		return nil, classify(err, "signing key")
	}
	keys := make([]*domain.SigningKey, len(rows))
	for i, r := range rows {
		keys[i] = &domain.SigningKey{ID: r.ID, Algorithm: r.Algorithm, PrivateDER: r.PrivateDER, CreateTime: r.CreateTime.UTC()}
	}
	return keys, nil
}

// AddSigningKey implements domain.Keys.
func (s *Store) AddSigningKey(ctx context.Context, k *domain.SigningKey) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	row := &signingKeyRow{ID: k.ID, Algorithm: k.Algorithm, PrivateDER: k.PrivateDER, CreateTime: k.CreateTime.UTC()}
	return classify(db.Create(row).Error, "signing key")
}

// Secret implements domain.Keys: insert-if-absent, then read back whichever
// value won.
func (s *Store) Secret(ctx context.Context, name string, value []byte) ([]byte, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&secretRow{Name: name, Value: value}).Error; err != nil {
		return nil, classify(err, "secret")
	}
	var r secretRow
	if err := db.Where("name = ?", name).Take(&r).Error; err != nil {
		return nil, classify(err, "secret")
	}
	return r.Value, nil
}
