package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// migrations are the schema's versions, applied in order and recorded in the
// schema_migrations table. Never change what one that has shipped does:
// append a new one. Each step checks what is there before it adds it
// (createTables, addColumn, createIndex; updates that match only the rows
// still to change), so a migration cut off halfway is completed by the next.
// Each declares the tables it creates with its own frozen structs, so later
// changes to the rows in models.go cannot change what an old migration does.
func migrations() []*gormigrate.Migration {
	return []*gormigrate.Migration{
		{
			ID: "0001_initial",
			Migrate: func(tx *gorm.DB) error {
				type users struct {
					ID           string         `gorm:"primaryKey;size:16"`
					Username     string         `gorm:"size:64;not null;uniqueIndex:users_username"`
					PasswordHash sql.NullString `gorm:"size:255"`
					OwnerID      sql.NullString `gorm:"size:16;index:users_owner_id"`
					Admin        bool           `gorm:"not null"`
					CreateTime   time.Time      `gorm:"not null;precision:6"`
				}
				// tokens_list serves ListTokens: one user's tokens in
				// (create_time, id) order, read by keyset.
				type tokens struct {
					ID         string       `gorm:"primaryKey;size:16;index:tokens_list,priority:3"`
					UserID     string       `gorm:"size:16;not null;index:tokens_list,priority:1"`
					SecretHash []byte       `gorm:"size:32;not null"`
					Note       string       `gorm:"size:256;not null"`
					CreateTime time.Time    `gorm:"not null;precision:6;index:tokens_list,priority:2"`
					ExpireTime sql.NullTime `gorm:"precision:6"`
					DeleteTime sql.NullTime `gorm:"precision:6"`
				}
				type signingKeys struct {
					ID         string    `gorm:"primaryKey;size:16"`
					Algorithm  string    `gorm:"size:16;not null"`
					PrivateDER []byte    `gorm:"not null"`
					CreateTime time.Time `gorm:"not null;precision:6"`
				}
				type serverSecrets struct {
					Name  string `gorm:"primaryKey;size:64"`
					Value []byte `gorm:"size:64;not null"`
				}
				return createTables(tx, map[string]any{
					"users": &users{}, "tokens": &tokens{}, "signing_keys": &signingKeys{}, "server_secrets": &serverSecrets{},
				})
			},
		},
		{
			ID: "0002_tokens_last_used_time",
			Migrate: func(tx *gorm.DB) error {
				type tokens struct {
					LastUsedTime sql.NullTime `gorm:"precision:6"`
				}
				return addColumn(tx, "tokens", &tokens{}, "LastUsedTime")
			},
		},
		{
			// Sealed secrets (nonce, tag, prefix) outgrow 64 bytes.
			ID: "0003_server_secrets_value_256",
			Migrate: func(tx *gorm.DB) error {
				type serverSecrets struct {
					Name  string `gorm:"primaryKey;size:64"`
					Value []byte `gorm:"size:256;not null"`
				}
				return tx.Table("server_secrets").Migrator().AlterColumn(&serverSecrets{}, "Value")
			},
		},
		{
			// users_list serves ListUsers' keyset pages, as tokens_list does ListTokens'.
			ID: "0004_users_list_index",
			Migrate: func(tx *gorm.DB) error {
				type users struct {
					ID         string    `gorm:"primaryKey;size:16;index:users_list,priority:2"`
					CreateTime time.Time `gorm:"not null;precision:6;index:users_list,priority:1"`
				}
				return createIndex(tx, "users", &users{}, "users_list")
			},
		},
		{
			// Rotation: a new key is published first and signs from its
			// activate time (null: from its create time, as keys before).
			ID: "0005_signing_keys_activate_time",
			Migrate: func(tx *gorm.DB) error {
				type signingKeys struct {
					ActivateTime sql.NullTime `gorm:"precision:6"`
				}
				return addColumn(tx, "signing_keys", &signingKeys{}, "ActivateTime")
			},
		},
		{
			// Rows transactions hold to take turns: replicas adding a
			// signing key at once add one between them.
			ID: "0006_locks",
			Migrate: func(tx *gorm.DB) error {
				type locks struct {
					Name string `gorm:"primaryKey;size:64"`
				}
				return createTables(tx, map[string]any{"locks": &locks{}})
			},
		},
		{
			// Scopes, secret rotation and the expiry index. Tokens made
			// before scopes existed could do everything the service did
			// then: they are given the scopes of that (a frozen list), so
			// they keep that power and no more (not introspect, which
			// came with scopes).
			ID: "0007_tokens_scopes_rotation",
			Migrate: func(tx *gorm.DB) error {
				type tokens struct {
					Scopes                   string       `gorm:"size:1024;not null;default:''"`
					PreviousSecretHash       []byte       `gorm:"size:32"`
					PreviousSecretExpireTime sql.NullTime `gorm:"precision:6"`
					ExpireTime               sql.NullTime `gorm:"precision:6;index:tokens_expire_time"`
				}
				for _, col := range []string{"Scopes", "PreviousSecretHash", "PreviousSecretExpireTime"} {
					if err := addColumn(tx, "tokens", &tokens{}, col); err != nil {
						return fmt.Errorf("adding tokens.%s: %w", col, err)
					}
				}
				if err := createIndex(tx, "tokens", &tokens{}, "tokens_expire_time"); err != nil {
					return err
				}
				return tx.Table("tokens").Where("scopes = ''").
					Update("scopes", "tokens:read tokens:write users:read users:write").Error
			},
		},
		{
			// Which secret a token has: access tokens carry it, so a
			// rotation shuts out those minted from the secret it replaced.
			// Tokens rotated before it count as never rotated: the access
			// tokens of their replaced secrets (15 minutes at most) are
			// let through until they expire, as they were.
			ID: "0008_tokens_secret_generation",
			Migrate: func(tx *gorm.DB) error {
				type tokens struct {
					SecretGeneration int `gorm:"not null;default:0"`
				}
				return addColumn(tx, "tokens", &tokens{}, "SecretGeneration")
			},
		},
		{
			// Rows a transaction takes to take turns (a user's, for its
			// quotas and deletion; a lock's) are written, not only read
			// FOR UPDATE: on a multi-primary cluster (Galera) a row lock
			// holds on one node, but two writes of one row conflict
			// across nodes, and one of the transactions is refused.
			ID: "0009_lock_versions",
			Migrate: func(tx *gorm.DB) error {
				type row struct {
					LockVersion int64 `gorm:"not null;default:0"`
				}
				for _, table := range []string{"users", "locks"} {
					if err := addColumn(tx, table, &row{}, "LockVersion"); err != nil {
						return fmt.Errorf("adding %s.lock_version: %w", table, err)
					}
				}
				return nil
			},
		},
		{
			// The audit trail (pkg/audit): events, written in the
			// transaction of the change each records or in batches, and
			// sealed into a hash chain later (seq, chain_hash); the chain's
			// head and where retention left its start (one row); signed
			// checkpoints.
			ID: "0010_audit_trail",
			Migrate: func(tx *gorm.DB) error {
				type auditEvents struct {
					ID int64 `gorm:"primaryKey;autoIncrement"`
					// Seq orders the events (0: not sealed yet); each party
					// index ends in it, so one party's events are read
					// newest first. Seq and ChainHash are of fixed size
					// and written when the row is: sealing rewrites them
					// in place, where growing every row split its page
					// (twice the bytes an event, measured).
					Seq             int64          `gorm:"not null;default:0;index:audit_events_seq;index:audit_events_actor,priority:2;index:audit_events_actor_person,priority:2;index:audit_events_subject,priority:2;index:audit_events_subject_person,priority:2;index:audit_events_token,priority:2"`
					ChainHash       []byte         `gorm:"type:binary(32);not null"`
					ContentHash     []byte         `gorm:"size:32;not null"`
					Time            time.Time      `gorm:"not null;precision:6"`
					Action          string         `gorm:"size:48;not null"`
					Outcome         string         `gorm:"size:16;not null"`
					ActorKind       string         `gorm:"size:16;not null"`
					ActorUserID     string         `gorm:"size:64;not null;index:audit_events_actor,priority:1"`
					ActorUsername   string         `gorm:"size:64;not null"`
					ActorOwnerID    string         `gorm:"size:64;not null"`
					ActorPersonID   string         `gorm:"size:64;not null;index:audit_events_actor_person,priority:1"`
					ActorTokenID    string         `gorm:"size:64;not null"`
					SubjectUserID   string         `gorm:"size:64;not null;index:audit_events_subject,priority:1"`
					SubjectUsername string         `gorm:"size:64;not null"`
					SubjectOwnerID  string         `gorm:"size:64;not null"`
					SubjectPersonID string         `gorm:"size:64;not null;index:audit_events_subject_person,priority:1"`
					SubjectTokenID  string         `gorm:"size:64;not null;index:audit_events_token,priority:1"`
					ClientAddress   string         `gorm:"size:64;not null"`
					UserAgent       string         `gorm:"size:256;not null"`
					RequestID       string         `gorm:"size:64;not null"`
					TraceID         string         `gorm:"size:32;not null"`
					Details         sql.NullString `gorm:"size:8192"`
				}
				type auditChain struct {
					ID         int    `gorm:"primaryKey;autoIncrement:false"`
					LastSeq    int64  `gorm:"not null"`
					LastHash   []byte `gorm:"size:32"`
					FirstSeq   int64  `gorm:"not null"`
					AnchorHash []byte `gorm:"size:32"`
					// AnchorJWS signs FirstSeq and AnchorHash once
					// retention moved them (pkg/audit): a start moved by
					// hand does not verify.
					AnchorJWS   string `gorm:"column:anchor_jws;size:2048;not null;default:''"`
					LockVersion int64  `gorm:"not null;default:0"`
				}
				type auditCheckpoints struct {
					Seq       int64     `gorm:"primaryKey;autoIncrement:false"`
					ChainHash []byte    `gorm:"size:32;not null"`
					Time      time.Time `gorm:"not null;precision:6"`
					JWS       string    `gorm:"size:2048;not null"`
				}
				if err := createTables(tx, map[string]any{"audit_events": &auditEvents{}, "audit_chain": &auditChain{},
					"audit_checkpoints": &auditCheckpoints{}}); err != nil {
					return err
				}
				return tx.Table("audit_chain").Clauses(clause.OnConflict{DoNothing: true}).
					Create(&auditChain{ID: 1, FirstSeq: 1}).Error
			},
		},
		{
			// Federated credentials (issue 21): an exchange finds them by
			// match_key, the SHA-256 of issuer, a zero byte and subject,
			// which fits an index where the two columns would not; a
			// machine user's are listed by federated_credentials_user.
			ID: "0011_federated_credentials",
			Migrate: func(tx *gorm.DB) error {
				type federatedCredentials struct {
					ID                 string    `gorm:"primaryKey;size:24"`
					UserID             string    `gorm:"size:16;not null;index:federated_credentials_user,priority:1"`
					MatchKey           []byte    `gorm:"type:binary(32);not null;index:federated_credentials_match"`
					Issuer             string    `gorm:"size:255;not null"`
					Subject            string    `gorm:"size:512;not null"`
					Audiences          string    `gorm:"type:text;not null"`
					CelCondition       string    `gorm:"size:4096;not null"`
					Scopes             string    `gorm:"type:text;not null"`
					MaxLifetimeSeconds int64     `gorm:"not null"`
					Description        string    `gorm:"size:256;not null"`
					CreateTime         time.Time `gorm:"not null;precision:6;index:federated_credentials_user,priority:2"`
				}
				return createTables(tx, map[string]any{"federated_credentials": &federatedCredentials{}})
			},
		},
		{
			// The change feed (issue 22): changes, what ended or narrowed
			// a credential, numbered by change_sequence's one row (see
			// recordChanges); pruned by time.
			ID: "0012_changes",
			Migrate: func(tx *gorm.DB) error {
				type changes struct {
					Seq  int64     `gorm:"primaryKey;autoIncrement:false"`
					Kind string    `gorm:"size:24;not null"`
					Ref  string    `gorm:"size:64;not null"`
					Time time.Time `gorm:"not null;precision:6;index:changes_time"`
				}
				type changeSequence struct {
					ID  int   `gorm:"primaryKey;autoIncrement:false"`
					Seq int64 `gorm:"not null"`
				}
				if err := createTables(tx, map[string]any{"changes": &changes{}, "change_sequence": &changeSequence{}}); err != nil {
					return err
				}
				return tx.Table("change_sequence").Clauses(clause.OnConflict{DoNothing: true}).
					Create(&changeSequence{ID: 1}).Error
			},
		},
		{
			// Single sign-on and the console (issue 24): the people an
			// OpenID provider vouches for, linked by the SHA-256 of its
			// issuer and their subject (one person, one row); the console's
			// sessions, by the SHA-256 of the cookie's secret; and the
			// sign-ins under way with the provider, by the SHA-256 of the
			// browser's secret for each; the CLI's sign-ins under way, by the
			// SHA-256 of their codes. No secret is kept.
			ID: "0013_sign_in",
			Migrate: func(tx *gorm.DB) error {
				type userIdentities struct {
					MatchKey   []byte    `gorm:"type:binary(32);primaryKey"`
					UserID     string    `gorm:"size:16;not null;index:user_identities_user"`
					Issuer     string    `gorm:"size:255;not null"`
					Subject    string    `gorm:"size:255;not null"`
					CreateTime time.Time `gorm:"not null;precision:6"`
				}
				type sessions struct {
					ID           []byte    `gorm:"type:binary(32);primaryKey"`
					UserID       string    `gorm:"size:16;not null;index:sessions_user"`
					CreateTime   time.Time `gorm:"not null;precision:6"`
					ExpireTime   time.Time `gorm:"not null;precision:6;index:sessions_expire"`
					LastSeenTime time.Time `gorm:"not null;precision:6"`
				}
				type signIns struct {
					BrowserKey []byte    `gorm:"type:binary(32);primaryKey"`
					ReturnTo   string    `gorm:"size:255;not null"`
					CreateTime time.Time `gorm:"not null;precision:6;index:sign_ins_time"`
				}
				type cliGrants struct {
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
				return createTables(tx, map[string]any{"user_identities": &userIdentities{}, "sessions": &sessions{}, "sign_ins": &signIns{},
					"cli_grants": &cliGrants{}})
			},
		},
	}
}

// createTables creates each named table from its frozen struct, but those
// there already (a migration cut off after some of its DDL, which MySQL
// commits statement by statement).
func createTables(tx *gorm.DB, tables map[string]any) error {
	for name, model := range tables {
		if tx.Migrator().HasTable(name) {
			continue
		}
		if err := tx.Table(name).Migrator().CreateTable(model); err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
	}
	return nil
}

// addColumn adds a column but one there already (see createTables).
func addColumn(tx *gorm.DB, table string, model any, field string) error {
	m := tx.Table(table).Migrator()
	if m.HasColumn(model, field) {
		return nil
	}
	return m.AddColumn(model, field)
}

// createIndex creates an index but one there already (see createTables).
func createIndex(tx *gorm.DB, table string, model any, name string) error {
	m := tx.Table(table).Migrator()
	if m.HasIndex(model, name) {
		return nil
	}
	return m.CreateIndex(model, name)
}

// migrationsTable is where gormigrate records the migrations applied.
const migrationsTable = "schema_migrations"

// MigrationIDs returns the ID of every migration, oldest first: the last
// is the schema Migrate brings a database to.
func MigrationIDs() []string {
	var ids []string
	for _, m := range migrations() {
		ids = append(ids, m.ID)
	}
	return ids
}

// AppliedMigrations returns the IDs of the migrations applied to the
// database, oldest first: none for a fresh one. It returns a
// domain.KindUnavailable error if the database cannot be reached.
func (s *Store) AppliedMigrations(ctx context.Context) ([]string, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var ids []string
	if !db.Migrator().HasTable(migrationsTable) {
		// HasTable reports a failed query as "no table": ask the database
		// once more, so that an unreachable one is an error, not "fresh".
		return nil, classify(db.Exec("SELECT 1").Error, "schema")
	}
	if err := db.Table(migrationsTable).Order("id").Pluck("id", &ids).Error; err != nil {
		return nil, classify(err, "schema")
	}
	return ids, nil
}

// Migrate brings the schema to the newest version. Replicas starting
// together take turns (a lease, migrationLease), and a schema a cut-off
// migration left half applied is completed: every step checks what is there
// before it adds it.
func (s *Store) Migrate(ctx context.Context) error { return s.MigrateTo(ctx, "") }

// MigrateTo brings the schema to the version whose ID is given ("": the
// newest), as Migrate does: the upgrade tests stop at an old version, write
// rows as that version did, and migrate on.
func (s *Store) MigrateTo(ctx context.Context, id string) error {
	_, err := s.migrateTo(ctx, id, nil)
	return err
}

// MigrateRecorded is Migrate, and returns the migrations this call
// applied, read under the migration lease (of replicas migrating at once,
// each returns those it applied itself). If it applied any, it writes to
// the audit trail the event that event makes of them: from is the
// newest migration applied before ("" for a fresh database).
func (s *Store) MigrateRecorded(ctx context.Context, event func(from string, applied []string) *domain.AuditEvent) ([]string, error) {
	return s.migrateTo(ctx, "", event)
}

func (s *Store) migrateTo(ctx context.Context, id string, event func(from string, applied []string) *domain.AuditEvent) ([]string, error) {
	release, err := s.takeMigrationLease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	var before []string
	if event != nil {
		if before, err = s.AppliedMigrations(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.migrate(ctx, id); err != nil {
		return nil, err
	}
	if event == nil {
		return nil, nil
	}
	after, err := s.AppliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, m := range after {
		if !slices.Contains(before, m) {
			applied = append(applied, m)
		}
	}
	if len(applied) == 0 {
		return nil, nil
	}
	from := ""
	if len(before) > 0 {
		from = before[len(before)-1]
	}
	return applied, s.AppendAuditEvents(ctx, []*domain.AuditEvent{event(from, applied)})
}

// migrate runs the migrations up to id ("": all), under the lease.
func (s *Store) migrate(ctx context.Context, id string) error {
	db := s.db.WithContext(ctx)
	if s.driver == DriverMySQL {
		// Session: Set returns a shared statement, on which gormigrate's
		// queries would pile up their WHERE clauses (the second migration
		// then looks unapplied).
		db = db.Set("gorm:table_options", "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin").Session(&gorm.Session{})
	}
	opts := *gormigrate.DefaultOptions
	opts.TableName = migrationsTable
	m := gormigrate.New(db, &opts, migrations())
	migrate := m.Migrate
	if id != "" {
		migrate = func() error { return m.MigrateTo(id) }
	}
	if err := migrate(); err != nil {
		return fmt.Errorf("migrating: %w", classify(err, "schema"))
	}
	return nil
}

// The migration lease: one row of migration_lease that every migrator
// writes to take it, so that on a multi-primary cluster (Galera), where a
// named lock (GET_LOCK) holds on one node only, the writes conflict and one
// wins. Its holder renews it while migrating; one that dies loses it when
// it expires, and the next migrator takes it over.
const (
	leaseTable   = "migration_lease"
	leaseTTL     = 30 * time.Second
	leaseRenewal = 10 * time.Second
	leaseWait    = time.Minute // how long a migrator waits for another's lease
)

// takeMigrationLease waits until it holds the migration lease, renews it
// until release is called, and then gives it up. It fails, naming the
// holder, when another holds it for longer than leaseWait (or ctx ends).
func (s *Store) takeMigrationLease(ctx context.Context) (release func(), err error) {
	if err := s.db.WithContext(ctx).Exec(s.leaseTableDDL()).Error; err != nil {
		return nil, fmt.Errorf("creating the migration lease: %w", classify(err, "schema"))
	}
	me := "migrator-" + rand.Text()[:12]
	if host, err := os.Hostname(); err == nil && len(host) <= 40 {
		me = host + "-" + rand.Text()[:12]
	}
	deadline := time.Now().Add(leaseWait)
	var holder string // another migrator that holds it
	var until time.Time
	for {
		h, u, err := s.claimLease(ctx, me)
		switch {
		case err == nil && h == me:
			return s.keepLease(me), nil
		case err == nil:
			holder, until = h, u
		case ctx.Err() == nil && leaseConflict(err):
		case holder == "":
			return nil, fmt.Errorf("taking the migration lease: %w", classify(err, "lock"))
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			if holder == "" {
				return nil, fmt.Errorf("taking the migration lease: %w", classify(ctx.Err(), "lock"))
			}
			return nil, &domain.Error{Kind: domain.KindUnavailable, Reason: domain.ReasonUnavailable,
				Message: fmt.Sprintf("another migrator (%s) holds the migration lease until %s: retry once it is done", holder, until.UTC().Format(time.RFC3339))}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// claimLease writes the lease row, taking the lease if it is free, expired
// or already ours, and returns who holds it (err: the write's, a conflict
// among them, which the caller retries).
func (s *Store) claimLease(ctx context.Context, me string) (holder string, until time.Time, err error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	now := time.Now().UTC()
	var claim string
	var args []any
	if s.driver == DriverMySQL {
		// The database's clock, which every replica shares; MySQL applies
		// the assignments left to right, so the second reads the first's
		// holder: both test the old expiry.
		claim = "INSERT INTO " + leaseTable + " (name, holder, expire_time) VALUES ('migrate', ?, NOW(6) + INTERVAL ? MICROSECOND) " +
			"ON DUPLICATE KEY UPDATE expire_time = IF(expire_time < NOW(6) OR holder = VALUES(holder), VALUES(expire_time), expire_time), " +
			"holder = IF(expire_time = VALUES(expire_time), VALUES(holder), holder)"
		args = []any{me, leaseTTL.Microseconds()}
	} else {
		claim = "INSERT INTO " + leaseTable + " (name, holder, expire_time) VALUES ('migrate', ?, ?) " +
			"ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expire_time = excluded.expire_time " +
			"WHERE " + leaseTable + ".expire_time < ? OR " + leaseTable + ".holder = excluded.holder"
		args = []any{me, now.Add(leaseTTL), now}
	}
	if err := db.Exec(claim, args...).Error; err != nil {
		return "", time.Time{}, err
	}
	row := db.Raw("SELECT holder, expire_time FROM " + leaseTable + " WHERE name = 'migrate'").Row()
	err = row.Scan(&holder, &until)
	return holder, until, err
}

// keepLease renews the lease until the returned release is called, which
// gives it up.
func (s *Store) keepLease(me string) (release func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(leaseRenewal):
				_, _, _ = s.claimLease(context.Background(), me)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		_ = s.db.Exec("DELETE FROM "+leaseTable+" WHERE name = 'migrate' AND holder = ?", me).Error
	}
}

// leaseConflict reports whether err is another migrator's write of the
// lease winning: a deadlock or lock wait (on Galera, a certification
// failure), or SQLite's busy database. The claim is tried again.
func leaseConflict(err error) bool {
	if lostConflict(err) {
		return true
	}
	return sqliteBusy(err)
}

// sqliteBusy reports whether err is SQLite's busy database.
func sqliteBusy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY")
}

func (s *Store) leaseTableDDL() string {
	if s.driver == DriverMySQL {
		return "CREATE TABLE IF NOT EXISTS " + leaseTable + " (name VARCHAR(64) NOT NULL PRIMARY KEY, holder VARCHAR(64) NOT NULL, " +
			"expire_time DATETIME(6) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
	}
	return "CREATE TABLE IF NOT EXISTS " + leaseTable + " (name TEXT NOT NULL PRIMARY KEY, holder TEXT NOT NULL, expire_time DATETIME NOT NULL)"
}
