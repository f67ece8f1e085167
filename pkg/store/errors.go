package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"regexp"

	mysqldriver "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

var passwordInDSN = regexp.MustCompile(`([^:/@()\s]+):[^@\s]*@`)

// classify turns a GORM or driver error into a domain error. what names the
// missing thing for not-found errors ("token"). A driver error never reaches
// the client: it travels only as the wrapped cause, for the log.
func classify(err error, what string) error {
	var domainErr *domain.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &domainErr):
		return err // decided here already (a quota)
	case errors.Is(err, gorm.ErrRecordNotFound):
		return domain.Errorf(domain.KindNotFound, "%s not found", what)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return domain.Wrap(domain.KindConflict, err, what+" already exists")
	case isUnavailable(err):
		return &domain.Error{Kind: domain.KindUnavailable, Err: redact(err), Reason: domain.ReasonUnavailable,
			Message: "the database is unavailable: retry shortly"}
	default:
		return domain.Wrap(domain.KindInternal, redact(err), "database error")
	}
}

// isUnavailable reports whether err means the database could not be reached
// or did not answer in time, as opposed to rejecting the query.
func isUnavailable(err error) bool {
	var netErr net.Error
	var myErr *mysqldriver.MySQLError
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) ||
		errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, mysqldriver.ErrInvalidConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &netErr) ||
		errors.As(err, &myErr) && transientMySQLErrors[myErr.Number]
}

// transientMySQLErrors are server errors that say "not now" rather than
// "not this query": a retry may succeed.
var transientMySQLErrors = map[uint16]bool{
	1047: true, // ER_UNKNOWN_COM_ERROR: a Galera node not Primary or not yet synced ("WSREP has not yet prepared node for application use")
	1180: true, // ER_ERROR_DURING_COMMIT: a Galera node that lost the majority while committing
	1040: true, // ER_CON_COUNT_ERROR: too many connections
	1053: true, // ER_SERVER_SHUTDOWN
	1205: true, // ER_LOCK_WAIT_TIMEOUT
	1213: true, // ER_LOCK_DEADLOCK
	1927: true, // ER_CONNECTION_KILLED (MariaDB)
}
