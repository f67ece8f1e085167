// Package store keeps users, tokens and keys in MySQL (production) or SQLite
// (the embedded default) through GORM. GORM rows are unexported and converted
// to domain types here; errors leave as domain errors.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"
	mysqldriver "github.com/go-sql-driver/mysql"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/opentelemetry/tracing"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// The supported database drivers.
const (
	DriverSQLite = "sqlite"
	DriverMySQL  = "mysql"
)

// Store implements domain.Users, domain.Tokens, domain.LastUsedWriter and domain.Keys.
type Store struct {
	db           *gorm.DB
	sqlDB        *sql.DB
	driver       string
	queryTimeout time.Duration
	txStats      txCounters
	userTurns    *userTurns  // see lockUser
	noJSONTable  atomic.Bool // the server lacks JSON_TABLE: see WriteLastUsed
}

var (
	_ domain.Users          = (*Store)(nil)
	_ domain.Tokens         = (*Store)(nil)
	_ domain.LastUsedWriter = (*Store)(nil)
	_ domain.Keys           = (*Store)(nil)
)

// Config says which database to open.
type Config struct {
	Driver string // DriverSQLite or DriverMySQL
	// DSN: for SQLite a file path or a file: URI (see ParseSQLiteDSN);
	// for MySQL a go-sql-driver DSN
	// (user:password@tcp(host:port)/dbname). Never logged.
	DSN          string
	MaxOpenConns int // MySQL only; 0: 32
	// QueryTimeout bounds each database call, whatever the caller's own
	// deadline: a database that stops answering fails requests with
	// UNAVAILABLE instead of holding them. 0: DefaultQueryTimeout.
	QueryTimeout time.Duration
	// Logger receives the MySQL driver's own messages (it reports a
	// dropped connection before returning the error) and, for SQLite, a
	// warning about database files every user may read; nil drops them.
	Logger *slog.Logger
	// TracerProvider, if set, traces every database call: a span with the
	// statement, never its values (they carry secret hashes).
	TracerProvider trace.TracerProvider
}

// DefaultQueryTimeout is the bound on one database call when Config leaves it unset.
const DefaultQueryTimeout = 5 * time.Second

// dialTimeout bounds connecting to MySQL when the DSN does not say.
const dialTimeout = 5 * time.Second

// Open prepares the database handle without connecting: a configuration
// error fails here; an unreachable database fails the first call (Ping,
// Migrate) with a domain.KindUnavailable error, and later calls reconnect.
// It does not migrate: call Migrate.
func Open(cfg Config) (*Store, error) {
	var dialector gorm.Dialector
	switch cfg.Driver {
	case DriverSQLite:
		if err := createPrivate(cfg.DSN); err != nil {
			return nil, err
		}
		warnIfExposed(cfg.DSN, cfg.Logger)
		dialector = sqlite.Open(sqliteDSN(cfg.DSN))
	case DriverMySQL:
		dsn, err := mysqlDSN(cfg.DSN)
		if err != nil {
			return nil, err
		}
		dsn.Logger = driverLogger{cfg.Logger}
		connector, err := mysqldriver.NewConnector(dsn)
		if err != nil {
			return nil, fmt.Errorf("invalid MySQL DSN: %w", redact(err))
		}
		if _, set := dsn.Params[syncWaitVariable]; !set {
			connector = causalReads{connector}
		}
		precision := 6
		dialector = mysql.New(mysql.Config{
			Conn:                     sql.OpenDB(connector),
			DefaultDatetimePrecision: &precision,
			// Asking the server's version would connect here, without a
			// deadline; instead assume the features both MySQL 5.7+ and
			// MariaDB have (renames by CHANGE, no FOR SHARE).
			SkipInitializeWithVersion:     true,
			DontSupportRenameIndex:        true,
			DontSupportRenameColumn:       true,
			DontSupportForShareClause:     true,
			DontSupportNullAsDefaultValue: true,
		})
	default:
		return nil, fmt.Errorf("unknown database driver %q (want %q or %q)", cfg.Driver, DriverSQLite, DriverMySQL)
	}
	gormCfg := &gorm.Config{
		TranslateError:       true,
		DisableAutomaticPing: true,           // connect on first use, under its caller's deadline
		Logger:               logger.Discard, // queries carry secret hashes: never log them
		NowFunc:              func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	}
	db, err := gorm.Open(dialector, gormCfg)
	// A new SQLite database is switched to WAL by its first connection,
	// which takes an exclusive lock; SQLite answers another opener's switch
	// with SQLITE_BUSY at once, without its busy timeout (replicas or the
	// CLI starting together: TestConcurrentMigrationsAreRecordedOnce failed
	// so, once in tens of runs). The lock lasts a moment: try again.
	for wait := 10 * time.Millisecond; err != nil && cfg.Driver == DriverSQLite && sqliteBusy(err) && wait < 2*time.Second; wait *= 2 {
		time.Sleep(wait)
		db, err = gorm.Open(dialector, gormCfg)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s database: %w", cfg.Driver, redact(err))
	}
	if cfg.TracerProvider != nil {
		if err := db.Use(tracing.NewPlugin(tracing.WithTracerProvider(cfg.TracerProvider),
			tracing.WithoutQueryVariables(), tracing.WithoutMetrics())); err != nil {
			return nil, fmt.Errorf("tracing the database: %w", err)
		}
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
	timeout := cfg.QueryTimeout
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	return &Store{db: db, sqlDB: sqlDB, driver: cfg.Driver, queryTimeout: timeout, userTurns: newUserTurns()}, nil
}

// bound gives one database call its deadline: the caller's, or QueryTimeout
// from now if that comes first.
func (s *Store) bound(ctx context.Context) (*gorm.DB, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, s.queryTimeout)
	return s.db.WithContext(ctx), cancel
}

// Close closes the database connections.
func (s *Store) Close() error { return s.sqlDB.Close() }

// DB returns the connection pool, for its statistics.
func (s *Store) DB() *sql.DB { return s.sqlDB }

// Ping reports whether the database answers queries: it reads a table,
// since a Galera node cut off from the majority (non-Primary) still answers
// a ping and a SELECT 1, and fails every read of a table (error 1047).
// It is meant for readiness, after Migrate.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.queryTimeout)
	defer cancel()
	var one int
	err := s.sqlDB.QueryRowContext(ctx, "SELECT 1 FROM "+migrationsTable+" LIMIT 1").Scan(&one)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return &domain.Error{Kind: domain.KindUnavailable, Err: redact(err), Reason: domain.ReasonUnavailable,
			Message: "the database is unavailable: retry shortly"}
	}
	return nil
}

// sqliteDSN turns a file path into a DSN with WAL (readers don't block the
// writer, and the CLI can work beside a running server), a busy timeout and
// foreign keys on. Transactions begin IMMEDIATE, taking the write lock
// first: one that reads, then writes (AddSigningKey) waits its turn behind
// another process's instead of failing with SQLITE_BUSY.
func sqliteDSN(path string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// mysqlDSN forces what the store relies on: times parsed and kept in UTC.
func mysqlDSN(dsn string) (*mysqldriver.Config, error) {
	cfg, err := mysqldriver.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid MySQL DSN: %w", redact(err))
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	cfg.Collation = "utf8mb4_bin"
	// Send each query with its arguments escaped in by the driver (safe with
	// utf8mb4) instead of as a server-side prepared statement: one round trip
	// per query instead of three (prepare, execute, close).
	cfg.InterpolateParams = true
	if cfg.Timeout == 0 {
		cfg.Timeout = dialTimeout
	}
	return cfg, nil
}

// redact keeps a DSN's password out of error messages: the drivers' errors
// can quote the DSN.
func redact(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s", passwordInDSN.ReplaceAllString(err.Error(), "$1:***@"))
}

// driverLogger passes the MySQL driver's messages to slog at debug level:
// each also comes back as an error, which is logged where it is handled.
type driverLogger struct{ logger *slog.Logger }

func (l driverLogger) Print(v ...any) {
	if l.logger != nil {
		l.logger.Debug("mysql driver", "message", fmt.Sprint(v...))
	}
}
