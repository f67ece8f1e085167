package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrations are the schema's versions, applied in order and recorded in the
// schema_migrations table. Never edit one that has shipped: append a new one.
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
				return tx.Table("tokens").Migrator().AddColumn(&tokens{}, "LastUsedTime")
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
				return tx.Table("users").Migrator().CreateIndex(&users{}, "users_list")
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
				return tx.Table("signing_keys").Migrator().AddColumn(&signingKeys{}, "ActivateTime")
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
				m := tx.Table("tokens").Migrator()
				for _, col := range []string{"Scopes", "PreviousSecretHash", "PreviousSecretExpireTime"} {
					if err := m.AddColumn(&tokens{}, col); err != nil {
						return fmt.Errorf("adding tokens.%s: %w", col, err)
					}
				}
				if err := m.CreateIndex(&tokens{}, "tokens_expire_time"); err != nil {
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
				return tx.Table("tokens").Migrator().AddColumn(&tokens{}, "SecretGeneration")
			},
		},
	}
}

// createTables creates each named table from its frozen struct.
func createTables(tx *gorm.DB, tables map[string]any) error {
	for name, model := range tables {
		if err := tx.Table(name).Migrator().CreateTable(model); err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
	}
	return nil
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

// Migrate brings the schema to the newest version. On MySQL it holds a named
// lock, so replicas starting together migrate one at a time.
func (s *Store) Migrate(ctx context.Context) error { return s.MigrateTo(ctx, "") }

// MigrateTo brings the schema to the version whose ID is given ("": the
// newest), as Migrate does: the upgrade tests stop at an old version, write
// rows as that version did, and migrate on.
func (s *Store) MigrateTo(ctx context.Context, id string) error {
	db := s.db.WithContext(ctx)
	if s.driver == DriverMySQL {
		conn, err := s.sqlDB.Conn(ctx)
		if err != nil {
			return classify(err, "database")
		}
		defer conn.Close()
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('tokenservice_migrate', 60)").Scan(&got); err != nil || got.Int64 != 1 {
			return fmt.Errorf("taking the migration lock: %w", classify(err, "lock"))
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK('tokenservice_migrate')")
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
