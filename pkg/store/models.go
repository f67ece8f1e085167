package store

import (
	"database/sql"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// The GORM rows the queries use. Migrations create the tables from their own
// frozen copies (migrations.go), so a change here needs a new migration.

type userRow struct {
	ID           string         `gorm:"primaryKey;size:16;index:users_list,priority:2"`
	Username     string         `gorm:"size:64;not null;uniqueIndex:users_username"`
	PasswordHash sql.NullString `gorm:"size:255"`
	OwnerID      sql.NullString `gorm:"size:16;index:users_owner_id"`
	Admin        bool           `gorm:"not null"`
	CreateTime   time.Time      `gorm:"not null;precision:6;index:users_list,priority:1"`
}

func (userRow) TableName() string { return "users" }

func (r *userRow) toDomain() *domain.User {
	return &domain.User{
		ID:           r.ID,
		Username:     r.Username,
		PasswordHash: r.PasswordHash.String,
		OwnerID:      r.OwnerID.String,
		Admin:        r.Admin,
		CreateTime:   r.CreateTime.UTC(),
	}
}

func userToRow(u *domain.User) *userRow {
	return &userRow{
		ID:           u.ID,
		Username:     u.Username,
		PasswordHash: nullString(u.PasswordHash),
		OwnerID:      nullString(u.OwnerID),
		Admin:        u.Admin,
		CreateTime:   u.CreateTime.UTC(),
	}
}

type tokenRow struct {
	ID         string       `gorm:"primaryKey;size:16;index:tokens_list,priority:3"`
	UserID     string       `gorm:"size:16;not null;index:tokens_list,priority:1"`
	SecretHash []byte       `gorm:"size:32;not null"`
	Note       string       `gorm:"size:256;not null"`
	CreateTime time.Time    `gorm:"not null;precision:6;index:tokens_list,priority:2"`
	ExpireTime sql.NullTime `gorm:"precision:6"`
	DeleteTime sql.NullTime `gorm:"precision:6"`
	// LastUsedTime is written only by WriteLastUsed, never by a create.
	LastUsedTime sql.NullTime `gorm:"precision:6;<-:update"`
	// Scopes is the space-delimited scope list.
	Scopes                   string       `gorm:"size:1024;not null"`
	PreviousSecretHash       []byte       `gorm:"size:32"`
	PreviousSecretExpireTime sql.NullTime `gorm:"precision:6"`
	SecretGeneration         int          `gorm:"not null"`
}

func (tokenRow) TableName() string { return "tokens" }

func (r *tokenRow) toDomain() *domain.Token {
	return &domain.Token{
		ID:           r.ID,
		UserID:       r.UserID,
		SecretHash:   r.SecretHash,
		Note:         r.Note,
		CreateTime:   r.CreateTime.UTC(),
		ExpireTime:   fromNullTime(r.ExpireTime),
		DeleteTime:   fromNullTime(r.DeleteTime),
		LastUsedTime: fromNullTime(r.LastUsedTime),
		Scopes:       domain.ParseScopes(r.Scopes),

		PreviousSecretHash:       r.PreviousSecretHash,
		PreviousSecretExpireTime: fromNullTime(r.PreviousSecretExpireTime),
		SecretGeneration:         r.SecretGeneration,
	}
}

func tokenToRow(t *domain.Token) *tokenRow {
	return &tokenRow{
		ID:         t.ID,
		UserID:     t.UserID,
		SecretHash: t.SecretHash,
		Note:       t.Note,
		CreateTime: t.CreateTime.UTC(),
		ExpireTime: nullTime(t.ExpireTime),
		DeleteTime: nullTime(t.DeleteTime),
		Scopes:     t.Scopes.String(),

		PreviousSecretHash:       t.PreviousSecretHash,
		PreviousSecretExpireTime: nullTime(t.PreviousSecretExpireTime),
		SecretGeneration:         t.SecretGeneration,
	}
}

type signingKeyRow struct {
	ID           string       `gorm:"primaryKey;size:16"`
	Algorithm    string       `gorm:"size:16;not null"`
	PrivateDER   []byte       `gorm:"not null"`
	CreateTime   time.Time    `gorm:"not null;precision:6"`
	ActivateTime sql.NullTime `gorm:"precision:6"`
}

func (signingKeyRow) TableName() string { return "signing_keys" }

type secretRow struct {
	Name  string `gorm:"primaryKey;size:64"`
	Value []byte `gorm:"size:256;not null"`
}

func (secretRow) TableName() string { return "server_secrets" }

// lockRow is a row transactions write (lock_version) to take turns.
type lockRow struct {
	Name string `gorm:"primaryKey;size:64"`
}

func (lockRow) TableName() string { return "locks" }

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func nullTime(t time.Time) sql.NullTime {
	return sql.NullTime{Time: t.UTC(), Valid: !t.IsZero()}
}

func fromNullTime(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}
