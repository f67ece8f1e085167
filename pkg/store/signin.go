package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

var (
	_ domain.SignIns  = (*Store)(nil)
	_ domain.Sessions = (*Store)(nil)
)

// identityRow links a user to who an OpenID provider says it is.
type identityRow struct {
	MatchKey   []byte    `gorm:"type:binary(32);primaryKey"`
	UserID     string    `gorm:"size:16;not null;index:user_identities_user"`
	Issuer     string    `gorm:"size:255;not null"`
	Subject    string    `gorm:"size:255;not null"`
	CreateTime time.Time `gorm:"not null;precision:6"`
}

func (identityRow) TableName() string { return "user_identities" }

// sessionRow is a console session.
type sessionRow struct {
	ID           []byte    `gorm:"type:binary(32);primaryKey"`
	UserID       string    `gorm:"size:16;not null;index:sessions_user"`
	CreateTime   time.Time `gorm:"not null;precision:6"`
	ExpireTime   time.Time `gorm:"not null;precision:6;index:sessions_expire"`
	LastSeenTime time.Time `gorm:"not null;precision:6"`
}

func (sessionRow) TableName() string { return "sessions" }

// signInRow is a sign-in under way with the OpenID provider.
type signInRow struct {
	BrowserKey []byte    `gorm:"type:binary(32);primaryKey"`
	ReturnTo   string    `gorm:"size:255;not null"`
	CreateTime time.Time `gorm:"not null;precision:6;index:sign_ins_time"`
}

func (signInRow) TableName() string { return "sign_ins" }

// UserByExternalIdentity implements domain.SignIns.
func (s *Store) UserByExternalIdentity(ctx context.Context, id domain.ExternalIdentity) (*domain.User, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var r userRow
	err := db.Joins("JOIN user_identities ON user_identities.user_id = users.id").
		Where("user_identities.match_key = ?", id.Key()).Take(&r).Error
	if err != nil {
		return nil, classify(err, "user")
	}
	return r.toDomain(), nil
}

// CreateExternalUser implements domain.SignIns.
func (s *Store) CreateExternalUser(ctx context.Context, u *domain.User, id domain.ExternalIdentity, events ...*domain.AuditEvent) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	return classify(s.transaction(db, func(tx *gorm.DB) error {
		if err := tx.Create(userToRow(u)).Error; err != nil {
			return err
		}
		// A link left by a deleted user (DeleteUser drops links after its
		// transaction) gives way; a live user's is not this identity's to
		// take, and stays: the insert below then conflicts.
		if err := tx.Where("match_key = ? AND user_id NOT IN (?)", id.Key(), tx.Model(&userRow{}).Select("id")).
			Delete(&identityRow{}).Error; err != nil {
			return err
		}
		link := identityRow{MatchKey: id.Key(), UserID: u.ID, Issuer: id.Issuer, Subject: id.Subject, CreateTime: u.CreateTime}
		if err := tx.Create(&link).Error; err != nil {
			return err
		}
		return insertAuditEvents(tx, events)
	}), "user")
}

// SetAdmin implements domain.SignIns.
func (s *Store) SetAdmin(ctx context.Context, userID string, admin bool, events ...*domain.AuditEvent) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	var changed int64
	err := s.transaction(db, func(tx *gorm.DB) error {
		res := tx.Model(&userRow{}).Where("id = ?", userID).Update("admin", admin)
		if changed = res.RowsAffected; res.Error != nil || changed == 0 {
			return res.Error
		}
		if err := insertAuditEvents(tx, events); err != nil {
			return err
		}
		return recordChanges(tx, domain.ChangedUser, userID)
	})
	if err == nil && changed == 0 {
		// MySQL counts the rows changed, not matched: another sign-in may
		// have set the same flag a moment before.
		var n int64
		if err := db.Model(&userRow{}).Where("id = ?", userID).Count(&n).Error; err != nil {
			return classify(err, "user")
		}
		if n == 0 {
			return domain.Errorf(domain.KindNotFound, "user not found")
		}
	}
	return classify(err, "user")
}

// CreateSession implements domain.Sessions.
func (s *Store) CreateSession(ctx context.Context, ses *domain.Session) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	return classify(db.Create(&sessionRow{ID: ses.ID, UserID: ses.UserID, CreateTime: ses.CreateTime,
		ExpireTime: ses.ExpireTime, LastSeenTime: ses.LastSeenTime}).Error, "session")
}

// SessionByID implements domain.Sessions.
func (s *Store) SessionByID(ctx context.Context, id []byte) (*domain.Session, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var r sessionRow
	if err := db.Where("id = ?", id).Take(&r).Error; err != nil {
		return nil, classify(err, "session")
	}
	return &domain.Session{ID: r.ID, UserID: r.UserID, CreateTime: r.CreateTime.UTC(),
		ExpireTime: r.ExpireTime.UTC(), LastSeenTime: r.LastSeenTime.UTC()}, nil
}

// TouchSession implements domain.Sessions.
func (s *Store) TouchSession(ctx context.Context, id []byte, at time.Time) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	return classify(db.Model(&sessionRow{}).Where("id = ?", id).Update("last_seen_time", at).Error, "session")
}

// DeleteSession implements domain.Sessions.
func (s *Store) DeleteSession(ctx context.Context, id []byte) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	return classify(db.Where("id = ?", id).Delete(&sessionRow{}).Error, "session")
}

// DeleteSessionsBefore implements domain.Sessions.
func (s *Store) DeleteSessionsBefore(ctx context.Context, t time.Time) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	return classify(db.Where("expire_time < ?", t).Delete(&sessionRow{}).Error, "session")
}

// StartSignIn implements domain.Sessions.
func (s *Store) StartSignIn(ctx context.Context, key []byte, returnTo string, at, forgetBefore time.Time) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	if err := db.Where("create_time < ?", forgetBefore).Delete(&signInRow{}).Error; err != nil {
		return classify(err, "sign-in")
	}
	return classify(db.Create(&signInRow{BrowserKey: key, ReturnTo: returnTo, CreateTime: at}).Error, "sign-in")
}

// TakeSignIn implements domain.Sessions: the delete decides which of two
// callers gets it.
func (s *Store) TakeSignIn(ctx context.Context, key []byte, notBefore time.Time) (string, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var r signInRow
	if err := db.Where("browser_key = ? AND create_time >= ?", key, notBefore).Take(&r).Error; err != nil {
		return "", classify(err, "sign-in")
	}
	res := db.Where("browser_key = ?", key).Delete(&signInRow{})
	if res.Error != nil {
		return "", classify(res.Error, "sign-in")
	}
	if res.RowsAffected == 0 {
		return "", domain.Errorf(domain.KindNotFound, "sign-in not found")
	}
	return r.ReturnTo, nil
}

var _ domain.CLIGrants = (*Store)(nil)

// cliGrantRow is a CLI sign-in under way.
type cliGrantRow struct {
	ID          []byte    `gorm:"type:binary(32);primaryKey"`
	UserCode    []byte    `gorm:"type:binary(32);uniqueIndex:cli_grants_user_code"`
	UserID      string    `gorm:"size:16;not null"`
	Status      string    `gorm:"size:16;not null"`
	Challenge   string    `gorm:"size:128;not null"`
	RedirectURI string    `gorm:"size:255;not null"`
	Host        string    `gorm:"size:64;not null"`
	CreateTime  time.Time `gorm:"not null;precision:6"`
	ExpireTime  time.Time `gorm:"not null;precision:6;index:cli_grants_expire"`
	PollTime    time.Time `gorm:"not null;precision:6"`
}

func (cliGrantRow) TableName() string { return "cli_grants" }

func (r *cliGrantRow) toDomain() *domain.CLIGrant {
	return &domain.CLIGrant{ID: r.ID, UserCode: r.UserCode, UserID: r.UserID, Status: domain.CLIGrantStatus(r.Status),
		Challenge: r.Challenge, RedirectURI: r.RedirectURI, Host: r.Host, CreateTime: r.CreateTime.UTC(),
		ExpireTime: r.ExpireTime.UTC(), PollTime: r.PollTime.UTC()}
}

// CreateCLIGrant implements domain.CLIGrants.
func (s *Store) CreateCLIGrant(ctx context.Context, g *domain.CLIGrant) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	if err := db.Where("expire_time < ?", g.CreateTime).Delete(&cliGrantRow{}).Error; err != nil {
		return classify(err, "grant")
	}
	return classify(db.Create(&cliGrantRow{ID: g.ID, UserCode: g.UserCode, UserID: g.UserID, Status: string(g.Status),
		Challenge: g.Challenge, RedirectURI: g.RedirectURI, Host: g.Host, CreateTime: g.CreateTime, ExpireTime: g.ExpireTime,
		PollTime: g.PollTime}).Error, "grant")
}

// CLIGrant implements domain.CLIGrants.
func (s *Store) CLIGrant(ctx context.Context, id []byte) (*domain.CLIGrant, error) {
	return s.cliGrantWhere(ctx, "id = ?", id)
}

// CLIGrantByUserCode implements domain.CLIGrants.
func (s *Store) CLIGrantByUserCode(ctx context.Context, userCode []byte) (*domain.CLIGrant, error) {
	return s.cliGrantWhere(ctx, "user_code = ?", userCode)
}

func (s *Store) cliGrantWhere(ctx context.Context, cond string, arg []byte) (*domain.CLIGrant, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var r cliGrantRow
	if err := db.Where(cond, arg).Take(&r).Error; err != nil {
		return nil, classify(err, "grant")
	}
	return r.toDomain(), nil
}

// DecideCLIGrant implements domain.CLIGrants.
func (s *Store) DecideCLIGrant(ctx context.Context, id []byte, userID string, status domain.CLIGrantStatus) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	res := db.Model(&cliGrantRow{}).Where("id = ? AND status = ?", id, string(domain.CLIGrantPending)).
		Updates(map[string]any{"user_id": userID, "status": string(status)})
	if res.Error != nil {
		return classify(res.Error, "grant")
	}
	if res.RowsAffected == 0 {
		return domain.Errorf(domain.KindNotFound, "grant not found")
	}
	return nil
}

// PollCLIGrant implements domain.CLIGrants. Two polls at once may both
// read the time before: the interval is advice to the client (RFC 8628
// §3.5), not a limit this must hold to the microsecond.
func (s *Store) PollCLIGrant(ctx context.Context, id []byte, at time.Time) (time.Time, error) {
	g, err := s.CLIGrant(ctx, id)
	if err != nil {
		return time.Time{}, err
	}
	db, cancel := s.bound(ctx)
	defer cancel()
	return g.PollTime, classify(db.Model(&cliGrantRow{}).Where("id = ?", id).Update("poll_time", at).Error, "grant")
}

// TakeCLIGrant implements domain.CLIGrants.
func (s *Store) TakeCLIGrant(ctx context.Context, id []byte) (bool, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	res := db.Where("id = ?", id).Delete(&cliGrantRow{})
	return res.RowsAffected == 1, classify(res.Error, "grant")
}
