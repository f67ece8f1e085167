package app

import (
	"context"
	"crypto/rand"
	"runtime"
	"strconv"
	"time"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// Database is the database, migrated, with the user rules over it: what the
// server-side commands (the first admin, a lost password) work with, as
// users.Operator, through the same rules the API applies.
type Database struct {
	store *store.Store
	users *users.Service
}

// OpenDatabase opens and migrates the database.
func OpenDatabase(ctx context.Context, cfg store.Config) (*Database, error) {
	passwords, err := auth.NewPasswords(auth.OWASPParams, rand.Reader, runtime.NumCPU())
	if err != nil {
		return nil, err
	}
	st, err := store.Open(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := migrateRecorded(ctx, st, operator); err != nil {
		st.Close()
		return nil, err
	}
	// Page tokens live only as long as this process: a key of its own does.
	pages := pagetoken.NewWithKey([]byte(rand.Text() + rand.Text()))
	svc := users.New(users.Config{}, users.Deps{Users: st, Passwords: passwords, Pages: pages, Clock: now, Rand: rand.Reader})
	return &Database{store: st, users: svc}, nil
}

// Users returns the user rules over the database.
func (d *Database) Users() *users.Service { return d.users }

// KeyRing returns a KeyRing over the signing keys, sealed under kek if it
// is set (opening values sealed under old too), that rotates as rotation
// says.
func (d *Database) KeyRing(kek []byte, old [][]byte, rotation auth.Rotation) (*auth.KeyRing, error) {
	var keys domain.Keys = d.store
	if kek != nil {
		sealed, err := auth.NewSealedKeys(d.store, kek, rand.Reader, old...)
		if err != nil {
			return nil, err
		}
		keys = sealed
	}
	rotation.Actor = operator
	return auth.NewKeyRing(keys, rand.Reader, rotation), nil
}

// operator is the actor the audit trail records for the server-side
// commands.
var operator = domain.ActorOf(users.Operator())

// Reseal seals every signing key and server secret under kek, in one
// transaction: those stored in the clear and those sealed under old. It
// returns how many values it sealed.
func (d *Database) Reseal(ctx context.Context, kek []byte, old [][]byte) (int, error) {
	sealed, err := auth.NewSealedKeys(d.store, kek, rand.Reader, old...)
	if err != nil {
		return 0, err
	}
	ev := &domain.AuditEvent{Time: now(), Action: domain.ActionKeysReseal, Outcome: domain.OutcomeSuccess, Actor: operator, Origin: domain.OriginFromContext(ctx)}
	return sealed.Reseal(ctx, d.store, ev)
}

// DeleteSigningKey deletes the stored signing key kid, as the operator
// (auth.DeleteSigningKey).
func (d *Database) DeleteSigningKey(ctx context.Context, kid string, force bool) error {
	return auth.DeleteSigningKey(ctx, d.store, kid, now(), force, operator)
}

// KeyStates returns where each stored signing key stands at now, from
// their times alone (no key is created or unsealed). A replaced key shows
// as published until serve, which knows the tokens' lifetime, deletes it.
func (d *Database) KeyStates(ctx context.Context, now time.Time) ([]auth.KeyState, error) {
	keys, err := d.store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	return auth.KeyStates(keys, now, 0), nil
}

// AuditTrail returns the audit trail, to verify and checkpoint.
func (d *Database) AuditTrail() domain.AuditTrail { return d.store }

// AuditSigner returns the key that signs and verifies the audit trail's
// checkpoints, opened with kek (and old) if it is sealed; as serve does,
// it makes the key on a database that has none yet.
func (d *Database) AuditSigner(ctx context.Context, kek []byte, old [][]byte) (*audit.Signer, error) {
	var secrets domain.Keys = d.store
	if kek != nil {
		sealed, err := auth.NewSealedKeys(d.store, kek, rand.Reader, old...)
		if err != nil {
			return nil, err
		}
		secrets = sealed
	}
	return loadAuditSigner(ctx, secrets)
}

// migrateRecorded applies the migrations st lacks, recording them in the audit
// trail as actor's (action database.migrate; details: from, the newest
// applied before or "none", to, and count), and returns those it applied.
func migrateRecorded(ctx context.Context, st *store.Store, actor domain.AuditParty) ([]string, error) {
	return st.MigrateRecorded(ctx, func(from string, applied []string) *domain.AuditEvent {
		if from == "" {
			from = "none"
		}
		return (&domain.AuditEvent{Time: now(), Action: domain.ActionDatabaseMigrate, Outcome: domain.OutcomeSuccess, Actor: actor, Origin: domain.OriginFromContext(ctx)}).
			With("from", from).With("to", applied[len(applied)-1]).With("count", strconv.Itoa(len(applied)))
	})
}

// MigrateAsOperator is migrateRecorded for the server-side commands.
func MigrateAsOperator(ctx context.Context, st *store.Store) ([]string, error) {
	return migrateRecorded(ctx, st, operator)
}

// Close closes the database.
func (d *Database) Close() error { return d.store.Close() }
