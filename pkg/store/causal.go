package store

import (
	"context"
	"database/sql/driver"
	"errors"

	mysqldriver "github.com/go-sql-driver/mysql"
)

// syncWaitVariable is Galera's causality check: with bit 1 set, a read
// (SELECT, SHOW, and BEGIN, so every transaction) first waits until its
// node has applied every write the cluster committed before it.
const syncWaitVariable = "wsrep_sync_wait"

// causalReads sets wsrep_sync_wait = 1 on each connection it opens. On a
// Galera cluster a node applies the others' writes on its own time, after
// they commit: without the wait, a token created through one replica
// could be refused (401) by a replica on another node for a moment, and a
// listing could miss it. With it, what one replica acknowledged every
// other sees. Elsewhere the setting is harmless: MariaDB without a cluster
// ignores it, and MySQL, which does not know it (error 1193), is left
// alone. A DSN that sets wsrep_sync_wait itself is used as it is.
type causalReads struct{ driver.Connector }

func (c causalReads) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		return conn, nil
	}
	if _, err := ex.ExecContext(ctx, "SET SESSION "+syncWaitVariable+" = 1", nil); err != nil && !unknownVariable(err) {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// unknownVariable reports whether err is MySQL's ER_UNKNOWN_SYSTEM_VARIABLE.
func unknownVariable(err error) bool {
	var myErr *mysqldriver.MySQLError
	return errors.As(err, &myErr) && myErr.Number == 1193
}
