// Package users owns the users' rules: who may create, see, delete and
// change the password of which user; what a username is; that a machine user
// has a human owner and no password; and how a password login is checked and
// limited. The API and the server-side commands both go through it.
package users

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
	"github.com/tokenservice/tokenservice/pkg/throttle"
)

// Config holds the service's tunables.
type Config struct {
	// MaxMachineUsersPerOwner, if positive, bounds the machine users one
	// human may own.
	MaxMachineUsersPerOwner int
	// Login limits, a minute (see logins); 0: no limit.
	LoginAttemptsPerUserAndAddress int // every attempt, per username and client address
	LoginAttemptsPerAddress        int // every attempt, per client address
	LoginAttemptsPerUser           int // per username, from addresses it has not logged in from lately
	// CreationsPerHour bounds each caller's CreateUser attempts an hour,
	// refused ones included, so that its conflicts cannot enumerate the
	// usernames for free; 0: no limit.
	CreationsPerHour int
	// PasswordsForAdminsOnly turns password sign-in off for everyone but
	// admins (a break-glass admin made with `db create-user --admin`),
	// where people sign in through the identity provider.
	PasswordsForAdminsOnly bool
}

// Deps are what the service works with.
type Deps struct {
	Users     domain.Users
	SignIns   domain.SignIns // nil: no single sign-on
	Passwords *auth.Passwords
	Pages     *pagetoken.Codec
	Observer  Observer // nil: nothing is told
	Audit     Audit    // nil: events of use are not recorded
	Clock     func() time.Time
	Rand      io.Reader // crypto/rand.Reader in production
}

// Observer is told the outcome of each password attempt, and of user
// creations refused by their limit, for metrics.
type Observer interface {
	PasswordChecked(PasswordOutcome)
	UserCreationLimited()
}

// PasswordOutcome is how a password attempt ended. The client gets one
// answer for every failed check; the operator sees which.
type PasswordOutcome string

// The outcomes.
const (
	PasswordOK              PasswordOutcome = "ok"
	PasswordWrong           PasswordOutcome = "wrong_password"
	PasswordUnknownUser     PasswordOutcome = "unknown_user" // or a malformed username
	LimitedByAddress        PasswordOutcome = "limited_address"
	LimitedByUserAndAddress PasswordOutcome = "limited_user_and_address"
	LimitedByUser           PasswordOutcome = "limited_user"
	// PasswordSignInOff: the right password of a user who may not sign
	// in with one (Config.PasswordsForAdminsOnly).
	PasswordSignInOff PasswordOutcome = "password_sign_in_off"
)

type noObserver struct{}

func (noObserver) PasswordChecked(PasswordOutcome) {}
func (noObserver) UserCreationLimited()            {}

// Service implements the user operations.
type Service struct {
	deps   Deps
	cfg    Config
	logins logins
	// creations limits each caller's CreateUser attempts (by user ID).
	creations *throttle.Limiter
}

// New returns a Service.
func New(cfg Config, deps Deps) *Service {
	if deps.Observer == nil {
		deps.Observer = noObserver{}
	}
	if deps.Audit == nil {
		deps.Audit = noAudit{}
	}
	return &Service{deps: deps, cfg: cfg, logins: newLogins(cfg, deps.Clock),
		creations: throttle.NewPer(cfg.CreationsPerHour, time.Hour, maxTrackedKeys, deps.Clock)}
}

// Operator is the caller the server-side commands act as: whoever holds the
// database's credentials may do what an admin may. It is never the caller of
// a request.
func Operator() *domain.Principal {
	return &domain.Principal{User: &domain.User{Username: "(operator)", Admin: true}, AllScopes: true}
}

// CreateInput is what a caller asks of Create.
type CreateInput struct {
	Username string
	Password string // human users only
	Admin    bool   // human users only
	Machine  bool
	// OwnerID owns a machine user: empty is the caller; an admin may name
	// another human user.
	OwnerID string
}

// Create creates a user. An admin creates human users; any human creates
// machine users, which it owns; a machine user creates none. Each caller's
// attempts are limited (Config.CreationsPerHour; the operator's are not):
// a taken username is told apart, so guessing them must cost.
func (s *Service) Create(ctx context.Context, caller *domain.Principal, in CreateInput) (*domain.User, error) {
	if err := caller.MayChangeCredentials(); err != nil {
		return nil, err
	}
	if caller.User.ID != "" {
		if ok, wait := s.creations.Allow(caller.User.ID); !ok {
			s.deps.Observer.UserCreationLimited()
			err := &domain.Error{Kind: domain.KindResourceExhausted, Reason: domain.ReasonTooManyUserCreations, RetryAfter: wait,
				Message: fmt.Sprintf("too many user creations: at most %d an hour (the server's --user-creations-per-hour); retry in %s", s.cfg.CreationsPerHour, wait.Round(time.Second))}
			s.creationRefused(ctx, caller, in, nil, err)
			return nil, err
		}
	}
	name, err := domain.NormalizeUsername(in.Username)
	if err != nil {
		return nil, err
	}
	u := &domain.User{Username: name, Admin: in.Admin, CreateTime: s.deps.Clock()}
	if u.ID, err = auth.RandomID(s.deps.Rand); err != nil {
		return nil, domain.Wrap(domain.KindInternal, err, "generating user ID")
	}
	if caller.User.IsMachine() {
		return nil, domain.Errorf(domain.KindPermissionDenied, "machine users cannot create users")
	}
	maxOwned := 0
	if in.Machine {
		if in.Password != "" {
			return nil, domain.InvalidField("password", "must be empty for a machine user: it has no password and authenticates with API tokens its owner creates")
		}
		if in.Admin {
			return nil, domain.InvalidField("admin", "must be false for a machine user: a machine user is never an admin")
		}
		if u.OwnerID, err = s.owner(ctx, caller, in.OwnerID); err != nil {
			return nil, err
		}
		maxOwned = s.cfg.MaxMachineUsersPerOwner
	} else {
		if !caller.User.Admin {
			return nil, domain.Errorf(domain.KindPermissionDenied, "only an admin may create human users; anyone may create machine users (machine: true)")
		}
		if in.OwnerID != "" {
			return nil, domain.InvalidField("owner_id", "is for machine users only")
		}
		if u.PasswordHash, err = s.hash(ctx, "password", in.Password); err != nil {
			return nil, err
		}
	}
	switch err := s.deps.Users.CreateUser(ctx, u, maxOwned, createdEvent(ctx, caller, u)); {
	case err == domain.ErrLimitReached:
		err := &domain.Error{Kind: domain.KindResourceExhausted, Reason: domain.ReasonQuotaExceeded,
			Message: fmt.Sprintf("the owner has %d machine users, the most allowed (the server's --max-machine-users-per-owner): delete one first", maxOwned)}
		s.creationRefused(ctx, caller, in, u, err)
		return nil, err
	case domain.KindOf(err) == domain.KindConflict:
		return nil, &domain.Error{Kind: domain.KindConflict, Reason: domain.ReasonUsernameTaken,
			Message: fmt.Sprintf("username %q is taken (usernames are unique ignoring case)", name)}
	case domain.KindOf(err) == domain.KindNotFound && u.OwnerID == caller.User.ID:
		// The caller was deleted since its credential was checked (on
		// another replica, or its cached entry outlived it).
		return nil, domain.ErrUnauthenticated
	case domain.KindOf(err) == domain.KindNotFound:
		return nil, domain.InvalidField("owner_id", "no such user")
	case err != nil:
		return nil, err
	}
	return u, nil
}

// owner returns the ID of a machine user's owner: the caller, or for an
// admin the human user named.
func (s *Service) owner(ctx context.Context, caller *domain.Principal, ownerID string) (string, error) {
	if ownerID == "" || ownerID == caller.User.ID {
		if caller.User.ID == "" {
			return "", domain.InvalidField("owner_id", "is required: a machine user needs a human owner")
		}
		return caller.User.ID, nil
	}
	if !caller.User.Admin {
		return "", domain.Errorf(domain.KindPermissionDenied, "only an admin may make a machine user for another owner")
	}
	o, err := s.deps.Users.UserByID(ctx, ownerID)
	if domain.KindOf(err) == domain.KindNotFound {
		return "", domain.InvalidField("owner_id", "no such user")
	}
	if err != nil {
		return "", err
	}
	if o.IsMachine() {
		return "", domain.InvalidField("owner_id", "%q is a machine user; owners are human users", o.Username)
	}
	return o.ID, nil
}

// hash checks a new password, the request's field, and hashes it.
func (s *Service) hash(ctx context.Context, field, password string) (string, error) {
	if err := domain.ValidatePassword(field, password); err != nil {
		return "", err
	}
	h, err := s.deps.Passwords.Hash(ctx, password)
	if ctx.Err() != nil {
		return "", domain.Wrap(domain.KindUnavailable, ctx.Err(), "too busy to hash the password: retry later")
	}
	if err != nil {
		return "", domain.Wrap(domain.KindInternal, err, "hashing password")
	}
	return h, nil
}

var errUserNotFound = domain.Errorf(domain.KindNotFound, "user not found")

// Get returns a user the caller may see: itself, its machine users, or
// anyone for an admin; any other is not found, so existence does not leak.
func (s *Service) Get(ctx context.Context, caller *domain.Principal, id string) (*domain.User, error) {
	if id == caller.User.ID {
		return caller.User, nil
	}
	u, err := s.deps.Users.UserByID(ctx, id)
	if domain.KindOf(err) == domain.KindNotFound {
		return nil, errUserNotFound
	}
	if err != nil {
		return nil, err
	}
	if !caller.User.Admin && u.OwnerID != caller.User.ID {
		return nil, errUserNotFound
	}
	return u, nil
}

// GetByUsername returns the user with this username if the caller may see it.
func (s *Service) GetByUsername(ctx context.Context, caller *domain.Principal, username string) (*domain.User, error) {
	name, err := domain.NormalizeUsername(username)
	if err != nil {
		return nil, err
	}
	u, err := s.deps.Users.UserByUsername(ctx, name)
	if domain.KindOf(err) == domain.KindNotFound {
		return nil, errUserNotFound
	}
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, caller, u.ID)
}

// ListInput is what a caller asks of List.
type ListInput struct {
	Username  string // if set, only the user with this username
	PageSize  int    // 0: pagetoken.DefaultPageSize; clamped to pagetoken.MaxPageSize
	PageToken string
	// Own: only the caller and its machine users, an admin's too.
	Own bool
}

// List returns one page of the users the caller may see (an admin: every
// user; anyone else: itself and its machine users), oldest first, and the
// token of the next page ("" on the last page).
func (s *Service) List(ctx context.Context, caller *domain.Principal, in ListInput) ([]*domain.User, string, error) {
	q := domain.UserQuery{}
	if !caller.User.Admin || in.Own {
		q.VisibleTo = caller.User.ID
	}
	if in.Username != "" {
		name, err := domain.NormalizeUsername(in.Username)
		if err != nil {
			return nil, "", err
		}
		q.Username = name
	}
	// A page token is good for the listing, caller and filter it came from.
	query := []string{"users", caller.User.ID, strconv.FormatBool(caller.User.Admin), q.Username, strconv.FormatBool(in.Own)}
	return pagetoken.List(s.deps.Pages, in.PageSize, in.PageToken, query,
		func(after *domain.Cursor, limit int) ([]*domain.User, error) {
			q.After, q.Limit = after, limit
			return s.deps.Users.ListUsers(ctx, q)
		},
		func(u *domain.User) domain.Cursor { return domain.Cursor{CreateTime: u.CreateTime, ID: u.ID} })
}

// Delete deletes a user the caller may see other than itself (an owner its
// machine users, an admin anyone), with its machine users, and revokes every
// token of all of them, in one transaction.
func (s *Service) Delete(ctx context.Context, caller *domain.Principal, id string) error {
	if err := caller.MayChangeCredentials(); err != nil {
		return err
	}
	u, err := s.Get(ctx, caller, id)
	if err != nil {
		return err
	}
	if u.ID == caller.User.ID {
		return domain.Errorf(domain.KindInvalid, "you cannot delete your own user (another admin can)")
	}
	action := domain.ActionUserDelete
	if u.IsMachine() {
		action = domain.ActionMachineUserDelete
	}
	ev := domain.NewAuditEvent(ctx, s.deps.Clock(), action, domain.OutcomeSuccess, caller)
	ev.Subject = domain.SubjectUser(u)
	_, err = s.deps.Users.DeleteUser(ctx, u.ID, ev)
	if domain.KindOf(err) == domain.KindNotFound {
		return errUserNotFound
	}
	return err
}

// PasswordChange is what a caller asks of ChangePassword.
type PasswordChange struct {
	UserID      string
	OldPassword string // required to change one's own
	NewPassword string
	ClientAddr  string // for the login limits on OldPassword
}

// ChangePassword sets a human user's password: one's own with the old
// password (checked as a login is: limited, one argon2id), or anyone's as an
// admin. API tokens are left as they are.
func (s *Service) ChangePassword(ctx context.Context, caller *domain.Principal, in PasswordChange) error {
	if err := caller.MayChangeCredentials(); err != nil {
		return err
	}
	u, err := s.Get(ctx, caller, in.UserID)
	if err != nil {
		return err
	}
	if u.IsMachine() {
		return domain.Errorf(domain.KindInvalid, "machine users have no password: they authenticate with API tokens")
	}
	if u.ID == caller.User.ID {
		// A stolen bearer alone must not take over the account.
		if in.OldPassword == "" {
			return domain.InvalidField("old_password", "is required to change your own password")
		}
		if _, err := s.AuthenticatePassword(ctx, u.Username, in.OldPassword, in.ClientAddr); err != nil {
			if err == domain.ErrUnauthenticated {
				return domain.Errorf(domain.KindPermissionDenied, "the old password given is not your current password")
			}
			return err
		}
	}
	hash, err := s.hash(ctx, "new_password", in.NewPassword)
	if err != nil {
		return err
	}
	ev := domain.NewAuditEvent(ctx, s.deps.Clock(), domain.ActionUserChangePassword, domain.OutcomeSuccess, caller)
	ev.Subject = domain.SubjectUser(u)
	err = s.deps.Users.SetPasswordHash(ctx, u.ID, hash, ev)
	if domain.KindOf(err) == domain.KindNotFound {
		return errUserNotFound
	}
	return err
}
