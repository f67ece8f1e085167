package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
)

// SQLiteFile is the file an SQLite DSN names, read as the embedded driver
// (modernc.org/sqlite, opening with SQLITE_OPEN_URI) and SQLite read it.
type SQLiteFile struct {
	// Path is the database file, relative to the working directory or
	// absolute; "" for an in-memory or a temporary database, which has no
	// file to protect or to find.
	Path string
	// MayCreate is whether opening creates a missing file: a URI's
	// mode=ro or mode=rw says it may not.
	MayCreate bool
}

// ParseSQLiteDSN returns the file dsn names. Two forms:
//   - a path, whose query (from the first "?") is the driver's parameters;
//   - an SQLite URI (https://www.sqlite.org/uri.html): "file:" then an
//     optional "//" authority, empty or "localhost" (SQLite refuses any
//     other), then a percent-encoded path up to "?" or "#", whose
//     parameters include mode (ro, rw, rwc, memory) and vfs.
//
// ":memory:", "file::memory:", mode=memory and vfs=memdb are in memory.
func ParseSQLiteDSN(dsn string) (SQLiteFile, error) {
	rest, isURI := strings.CutPrefix(dsn, "file:")
	if !isURI {
		path := dsn
		if i := strings.IndexByte(dsn, '?'); i >= 1 { // the driver's rule
			path = dsn[:i]
		}
		if path == ":memory:" {
			path = ""
		}
		return SQLiteFile{Path: path, MayCreate: true}, nil
	}
	rest, _, _ = strings.Cut(rest, "#")
	rawPath, rawQuery, _ := strings.Cut(rest, "?")
	if after, ok := strings.CutPrefix(rawPath, "//"); ok {
		authority, path, _ := strings.Cut(after, "/")
		if authority != "" && authority != "localhost" {
			return SQLiteFile{}, fmt.Errorf("SQLite DSN %q: the host of a file: URI is empty or localhost (file:///path/to/db or file:path/to/db)", dsn)
		}
		rawPath = "/" + path
	}
	path, err := url.PathUnescape(rawPath)
	if err != nil {
		return SQLiteFile{}, fmt.Errorf("SQLite DSN %q: the path is not percent-encoded correctly: %w", dsn, err)
	}
	f := SQLiteFile{Path: path, MayCreate: true}
	for _, kv := range strings.Split(rawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if v, err = url.PathUnescape(v); err != nil {
			return SQLiteFile{}, fmt.Errorf("SQLite DSN %q: parameter %q is not percent-encoded correctly: %w", dsn, k, err)
		}
		switch {
		case k == "mode" && v == "memory", k == "vfs" && v == "memdb":
			f.Path = ""
		case k == "mode":
			// SQLite takes the last mode given.
			f.MayCreate = v == "rwc"
		}
	}
	if f.Path == ":memory:" {
		f.Path = ""
	}
	return f, nil
}

// createPrivate creates the SQLite file dsn names, if it is missing and the
// DSN lets it be created, readable by its owner only: it holds password
// hashes and (unless sealed) signing keys. SQLite gives the -wal, -shm and
// -journal files the database file's mode. An existing file keeps the mode
// its operator gave it (a Kubernetes volume with fsGroup makes it
// group-readable, on purpose).
func createPrivate(dsn string) error {
	file, err := ParseSQLiteDSN(dsn)
	if err != nil {
		return err
	}
	if file.Path == "" || !file.MayCreate {
		return nil
	}
	f, err := os.OpenFile(file.Path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating the SQLite database: %w", err)
	}
	return f.Close()
}

// warnIfExposed logs a warning for each of the SQLite database's files
// (the database, -wal, -shm, -journal) that every user may read: made by an
// earlier version from a file: DSN, or by hand. Its mode is the operator's
// to change, so this only says so; a group-readable file passes (a
// Kubernetes volume's fsGroup makes one on purpose).
func warnIfExposed(dsn string, logger *slog.Logger) {
	file, err := ParseSQLiteDSN(dsn)
	if err != nil || file.Path == "" || logger == nil {
		return
	}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		path := file.Path + suffix
		info, err := os.Stat(path)
		if err != nil || info.Mode().Perm()&0o007 == 0 {
			continue
		}
		logger.Warn(fmt.Sprintf("%s may be read by every user: it holds password hashes and, unless sealed, the signing keys; run chmod 600 %s", path, path),
			"path", path, "mode", fmt.Sprintf("%04o", info.Mode().Perm()))
	}
}
