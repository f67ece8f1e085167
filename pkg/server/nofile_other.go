//go:build !unix

package server

// openFileLimit reports that the platform has no RLIMIT_NOFILE to read.
func openFileLimit() (uint64, bool) { return 0, false }
