package metrics

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
)

// Family is a metric family the service serves: the contract that
// dashboards and alerts (deploy/observability) read.
type Family struct {
	Name string
	Type dto.MetricType
	// Labels are the family's labels, each with the values it takes when
	// the service fixes them (its own counters' outcomes, the transports:
	// every series is there from the start), or nil when the calls decide
	// (the RPC's service, method, type and code).
	Labels map[string][]string
}

// rpcLabels are the labels whose values the calls (the RPC metrics') or
// the configuration (the trusted issuers) decide.
var rpcLabels = []string{"grpc_service", "grpc_method", "grpc_type", "grpc_code", "issuer"}

// Families returns the metric families the service serves, sorted by name:
// read from a scrape of a Metrics with its collectors registered as the app
// registers them (Register, over stand-in sources) and one call answered
// over each transport, so that the
// list cannot drift from the code. (A histogram's family is one name; a
// scrape shows it as its _bucket, _sum and _count series.)
func Families() ([]Family, error) {
	m := New()
	// The pool's statistics of a database never connected to: the
	// collector only reads db.Stats.
	db := sql.OpenDB(noDB{})
	defer db.Close()
	m.Register(Sources{DB: db, SigningKeyActivated: func() (time.Time, bool) { return time.Time{}, false },
		CountExpiring: func(context.Context, time.Time, time.Time) (int64, error) { return 0, nil }, Clock: time.Now,
		Transactions: func() TransactionCounts { return TransactionCounts{} }})
	m.Handler() // registers promhttp's own error counter
	m.TrustedIssuers([]string{"https://issuer.example"})
	info := &grpc.UnaryServerInfo{FullMethod: "/families.Service/Call"}
	for _, transport := range []string{TransportGRPC, TransportREST} {
		_, _ = m.UnaryServerInterceptor(transport)(context.Background(), nil, info,
			func(context.Context, any) (any, error) { return nil, nil })
	}
	mfs, err := m.reg.Gather()
	if err != nil {
		return nil, err
	}
	return familiesOf(mfs), nil
}

// familiesOf describes the families of a scrape.
func familiesOf(mfs []*dto.MetricFamily) []Family {
	out := make([]Family, 0, len(mfs))
	for _, mf := range mfs {
		f := Family{Name: mf.GetName(), Type: mf.GetType(), Labels: map[string][]string{}}
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				if slices.Contains(rpcLabels, l.GetName()) {
					f.Labels[l.GetName()] = nil
					continue
				}
				if values := f.Labels[l.GetName()]; !slices.Contains(values, l.GetValue()) {
					f.Labels[l.GetName()] = append(values, l.GetValue())
				}
			}
		}
		for _, values := range f.Labels {
			slices.Sort(values)
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Family) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// noDB is a database/sql connector that never connects.
type noDB struct{}

func (noDB) Connect(context.Context) (driver.Conn, error) { return nil, errNoDB }
func (noDB) Driver() driver.Driver                        { return noDriver{} }

type noDriver struct{}

func (noDriver) Open(string) (driver.Conn, error) { return nil, errNoDB }

var errNoDB = errors.New("metrics.Families opens no database")
