// Package store keeps users, tokens and keys in MySQL (production) or SQLite
// (the embedded default) through GORM. GORM rows are unexported and converted
// to domain types here; errors leave as domain errors.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	mysqldriver "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// The supported database drivers.
const (
	DriverSQLite = "sqlite"
	DriverMySQL  = "mysql"
)

// Store implements domain.Users, domain.Tokens and domain.Keys.
type Store struct {
	db     *gorm.DB
	sqlDB  *sql.DB
	driver string
}

var (
	_ domain.Users  = (*Store)(nil)
	_ domain.Tokens = (*Store)(nil)
	_ domain.Keys   = (*Store)(nil)
)

// Config says which database to open.
type Config struct {
	Driver string // DriverSQLite or DriverMySQL
	// DSN: for SQLite a file path; for MySQL a go-sql-driver DSN
	// (user:password@tcp(host:port)/dbname). Never logged.
	DSN          string
	MaxOpenConns int // MySQL only; 0: 32
}

// Open connects to the database. It does not migrate: call Migrate.
func Open(cfg Config) (*Store, error) {
	var dialector gorm.Dialector
	switch cfg.Driver {
	case DriverSQLite:
		dialector = sqlite.Open(sqliteDSN(cfg.DSN))
	case DriverMySQL:
		dsn, err := mysqlDSN(cfg.DSN)
		if err != nil {
			return nil, err
		}
		precision := 6
		dialector = mysql.New(mysql.Config{DSN: dsn, DefaultDatetimePrecision: &precision})
	default:
		return nil, fmt.Errorf("unknown database driver %q (want %q or %q)", cfg.Driver, DriverSQLite, DriverMySQL)
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		TranslateError: true,
		Logger:         logger.Discard, // queries carry secret hashes: never log them
		NowFunc:        func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	})
	if err != nil {
		return nil, fmt.Errorf("opening %s database: %w", cfg.Driver, redact(err))
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	switch cfg.Driver {
	case DriverSQLite:
		// One writer at a time is SQLite's model; one connection avoids
		// SQLITE_BUSY under concurrent requests.
		sqlDB.SetMaxOpenConns(1)
	case DriverMySQL:
		n := cfg.MaxOpenConns
		if n <= 0 {
			n = 32
		}
		sqlDB.SetMaxOpenConns(n)
		sqlDB.SetMaxIdleConns(n)
		sqlDB.SetConnMaxLifetime(5 * time.Minute)
	}
	return &Store{db: db, sqlDB: sqlDB, driver: cfg.Driver}, nil
}

// Close closes the database connections.
func (s *Store) Close() error { return s.sqlDB.Close() }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.sqlDB.PingContext(ctx); err != nil {
		return domain.Wrap(domain.KindUnavailable, err, "database unavailable")
	}
	return nil
}

// sqliteDSN turns a file path into a DSN with WAL (readers don't block the
// writer, and the CLI can work beside a running server), a busy timeout and
// foreign keys on.
func sqliteDSN(path string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
}

// mysqlDSN forces what the store relies on: times parsed and kept in UTC.
func mysqlDSN(dsn string) (string, error) {
	cfg, err := mysqldriver.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("invalid MySQL DSN: %w", redact(err))
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	cfg.Collation = "utf8mb4_bin"
	return cfg.FormatDSN(), nil
}

// redact keeps a DSN's password out of error messages: the drivers' errors
// can quote the DSN.
func redact(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s", passwordInDSN.ReplaceAllString(err.Error(), "$1:***@"))
}
