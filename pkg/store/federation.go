package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"time"

	"gorm.io/gorm"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

var _ domain.FederatedCredentials = (*Store)(nil)

type federatedCredentialRow struct {
	ID                 string    `gorm:"primaryKey;size:24"`
	UserID             string    `gorm:"size:16;not null;index:federated_credentials_user,priority:1"`
	MatchKey           []byte    `gorm:"type:binary(32);not null;index:federated_credentials_match"`
	Issuer             string    `gorm:"size:255;not null"`
	Subject            string    `gorm:"size:512;not null"`
	Audiences          string    `gorm:"type:text;not null"` // a JSON array
	CelCondition       string    `gorm:"size:4096;not null"`
	Scopes             string    `gorm:"type:text;not null"`
	MaxLifetimeSeconds int64     `gorm:"not null"`
	Description        string    `gorm:"size:256;not null"`
	CreateTime         time.Time `gorm:"not null;precision:6;index:federated_credentials_user,priority:2"`
}

func (federatedCredentialRow) TableName() string { return "federated_credentials" }

// matchKey is what an exchange looks a credential up by: issuer and
// subject, length-prefixed so that no two pairs share it.
func matchKey(issuer, subject string) []byte {
	h := sha256.New()
	h.Write([]byte{byte(len(issuer) >> 8), byte(len(issuer))})
	h.Write([]byte(issuer))
	h.Write([]byte(subject))
	return h.Sum(nil)
}

func (r *federatedCredentialRow) toDomain() *domain.FederatedCredential {
	var auds []string
	_ = json.Unmarshal([]byte(r.Audiences), &auds) // written by credentialToRow
	return &domain.FederatedCredential{
		ID:          r.ID,
		UserID:      r.UserID,
		Issuer:      r.Issuer,
		Subject:     r.Subject,
		Audiences:   auds,
		Condition:   r.CelCondition,
		Scopes:      domain.ParseScopes(r.Scopes),
		MaxLifetime: time.Duration(r.MaxLifetimeSeconds) * time.Second,
		Description: r.Description,
		CreateTime:  r.CreateTime.UTC(),
	}
}

func credentialToRow(c *domain.FederatedCredential) *federatedCredentialRow {
	auds, _ := json.Marshal(c.Audiences) // strings: cannot fail
	return &federatedCredentialRow{
		ID:                 c.ID,
		UserID:             c.UserID,
		MatchKey:           matchKey(c.Issuer, c.Subject),
		Issuer:             c.Issuer,
		Subject:            c.Subject,
		Audiences:          string(auds),
		CelCondition:       c.Condition,
		Scopes:             c.Scopes.String(),
		MaxLifetimeSeconds: int64(c.MaxLifetime / time.Second),
		Description:        c.Description,
		CreateTime:         c.CreateTime.UTC(),
	}
}

// CreateFederatedCredential implements domain.FederatedCredentials, holding
// the user's row as CreateToken does: the quota is checked there, and a
// user being deleted cannot leave a credential behind.
func (s *Store) CreateFederatedCredential(ctx context.Context, c *domain.FederatedCredential, max int, events ...*domain.AuditEvent) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	release, err := s.takeUserTurn(db, c.UserID)
	if err != nil {
		return classify(err, "federated credential")
	}
	defer release()
	err = s.transaction(db, func(tx *gorm.DB) error {
		if err := insertAuditEvents(tx, events); err != nil {
			return err
		}
		if err := s.lockUser(tx, c.UserID); err != nil {
			return err
		}
		if max > 0 {
			var n int64
			if err := tx.Model(&federatedCredentialRow{}).Where("user_id = ?", c.UserID).Count(&n).Error; err != nil {
				return err
			}
			if n >= int64(max) {
				return domain.ErrLimitReached
			}
		}
		if err := tx.Create(credentialToRow(c)).Error; err != nil {
			return err
		}
		return recordChanges(tx, domain.ChangedFederatedCredential, c.ID)
	})
	return classify(err, "federated credential")
}

// FederatedCredentialByID implements domain.FederatedCredentials.
func (s *Store) FederatedCredentialByID(ctx context.Context, id string) (*domain.FederatedCredential, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var r federatedCredentialRow
	if err := db.Where("id = ?", id).Take(&r).Error; err != nil {
		return nil, classify(err, "federated credential")
	}
	return r.toDomain(), nil
}

// ListFederatedCredentials implements domain.FederatedCredentials.
func (s *Store) ListFederatedCredentials(ctx context.Context, userID string) ([]*domain.FederatedCredential, error) {
	return s.federatedCredentialsWhere(ctx, "user_id = ?", userID)
}

// FederatedCredentialsFor implements domain.FederatedCredentials.
func (s *Store) FederatedCredentialsFor(ctx context.Context, issuer, subject string) ([]*domain.FederatedCredential, error) {
	all, err := s.federatedCredentialsWhere(ctx, "match_key = ?", matchKey(issuer, subject))
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, c := range all { // the key is a hash: compare what it hashed
		if c.Issuer == issuer && c.Subject == subject {
			out = append(out, c)
		}
	}
	return out, nil
}

func (s *Store) federatedCredentialsWhere(ctx context.Context, query string, arg any) ([]*domain.FederatedCredential, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var rows []federatedCredentialRow
	if err := db.Where(query, arg).Order("create_time, id").Find(&rows).Error; err != nil {
		return nil, classify(err, "federated credential")
	}
	out := make([]*domain.FederatedCredential, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// DeleteFederatedCredential implements domain.FederatedCredentials.
func (s *Store) DeleteFederatedCredential(ctx context.Context, id string, events ...*domain.AuditEvent) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	err := s.transaction(db, func(tx *gorm.DB) error {
		res := tx.Where("id = ?", id).Delete(&federatedCredentialRow{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return gorm.ErrRecordNotFound
		}
		if err := insertAuditEvents(tx, events); err != nil {
			return err
		}
		return recordChanges(tx, domain.ChangedFederatedCredential, id)
	})
	return classify(err, "federated credential")
}
