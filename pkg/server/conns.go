package server

import (
	"fmt"
	"net"

	"golang.org/x/net/netutil"
)

// Each accepted connection costs the process a file descriptor, and every
// listener draws on the one open-file limit (RLIMIT_NOFILE): without a cap,
// idle connections on one port use them all and every other port stops
// accepting ("too many open files"). A capped listener stops accepting at
// its cap; further clients wait in the kernel's backlog, which costs no
// descriptor, until a connection closes.

// fileHeadroom is how many descriptors the connection caps leave for
// everything else the process opens: the database pool and files, the
// listeners, the debug listener, outgoing trace exports. A quarter of the
// limit, and at least 64.
func fileHeadroom(nofile int) int { return max(64, nofile/4) }

// maxFileLimit bounds the limit the caps are derived from (an "unlimited"
// RLIMIT_NOFILE would overflow them).
const maxFileLimit = 1 << 24

// fallbackFileLimit stands for the limit where the platform does not say.
const fallbackFileLimit = 4096

// connCaps are the most connections each listener keeps open at once.
type connCaps struct{ http, grpc, metrics int }

// defaultConnCaps shares the open-file limit nofile among the listeners,
// leaving fileHeadroom: the metrics listener, scraped by a few Prometheus
// servers, gets a twentieth (at most 64), REST and gRPC half each of the rest.
func defaultConnCaps(nofile int) connCaps {
	nofile = min(nofile, maxFileLimit)
	avail := max(nofile-fileHeadroom(nofile), 3)
	metrics := min(64, max(avail/20, 1))
	http := (avail - metrics) / 2
	return connCaps{http: http, grpc: avail - metrics - http, metrics: metrics}
}

// processFileLimit returns the process's open-file limit, or a fallback
// where the platform does not say.
func processFileLimit() int {
	if n, ok := openFileLimit(); ok {
		return int(min(n, maxFileLimit))
	}
	return fallbackFileLimit
}

// capsOverFileLimit says what is wrong, or "", when the connection caps
// (set by hand) leave fewer descriptors than fileHeadroom under the
// open-file limit nofile: a flood could then exhaust them after all.
func capsOverFileLimit(l Limits, metrics bool, nofile int) string {
	sum := l.MaxHTTPConns + l.MaxGRPCConns
	if metrics {
		sum += l.MaxMetricsConns
	}
	if room := nofile - fileHeadroom(nofile); sum > room {
		return fmt.Sprintf("the connection caps (--http-max-connections %d, --grpc-max-connections %d, --metrics-max-connections %d) add up to more than the %d the open-file limit of %d leaves: a flood of connections can exhaust the file descriptors; lower them or raise the limit (ulimit -n)",
			l.MaxHTTPConns, l.MaxGRPCConns, l.MaxMetricsConns, max(room, 0), nofile)
	}
	return ""
}

// listen listens on addr, keeping at most max connections open at once.
func listen(addr string, max int) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return netutil.LimitListener(lis, max), nil
}
