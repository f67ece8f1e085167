package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc/codes"

	"github.com/tokenservice/tokenservice/pkg/metrics"
)

// The metrics tokenservice exposes, with their labels and, where the set
// is closed, the values each label takes: read from pkg/metrics (Families,
// which its own tests hold to what the running service serves), not kept by
// hand here. A histogram family is read as its _bucket (with le), _sum and
// _count series. Prometheus adds up to the targets, and job and instance to
// every series.
// theContract is the metric contract, computed once on first use (a
// failure to compute it fails the checks that need it, not the package).
var theContract = sync.OnceValues(func() (map[string]map[string][]string, error) {
	families, err := metrics.Families()
	if err != nil {
		return nil, fmt.Errorf("metrics.Families: %w", err)
	}
	return contractOf(families), nil
})

func contractOf(families []metrics.Family) map[string]map[string][]string {
	c := map[string]map[string][]string{"up": {}}
	for _, f := range families {
		labels := maps.Clone(f.Labels)
		if _, ok := labels["grpc_code"]; ok {
			labels["grpc_code"] = grpcCodes() // the calls decide which, but only among gRPC's codes
		}
		switch f.Type {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			bucket := maps.Clone(labels)
			bucket["le"] = nil
			c[f.Name+"_bucket"], c[f.Name+"_sum"], c[f.Name+"_count"] = bucket, labels, maps.Clone(labels)
		case dto.MetricType_SUMMARY:
			quantile := maps.Clone(labels)
			quantile["quantile"] = nil
			c[f.Name], c[f.Name+"_sum"], c[f.Name+"_count"] = quantile, labels, maps.Clone(labels)
		default:
			c[f.Name] = labels
		}
	}
	return c
}

// grpcCodes are the values of grpc_code: the names of gRPC's status codes.
func grpcCodes() []string {
	var out []string
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		out = append(out, c.String())
	}
	return out
}

// Label values pinned beyond the closed sets above: the job the
// ServiceMonitor gives the targets, and the exchange RPC.
var pinned = map[string][]string{
	"job":          {"tokenservice"},
	"grpc_service": {"priv.tokenservice.v1alpha1.TokenService"},
	"grpc_method":  {"GetAccessToken"},
}

var promqlParser = parser.NewParser(parser.Options{})

// checkQuery parses a PromQL expression and checks it against the contract:
// every metric exists, every label matched or grouped by is one the metric
// has, every value matched is one the label takes. It returns the metrics
// the expression reads.
func checkQuery(expr string) ([]string, error) {
	contract, err := theContract()
	if err != nil {
		return nil, err
	}
	e, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var errs []string
	var names []string
	labelsOf := func(name string) map[string][]string {
		l := maps.Clone(contract[name])
		l["job"], l["instance"] = pinned["job"], nil
		return l
	}
	parser.Inspect(e, func(node parser.Node, path []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			name := n.Name
			if name == "" {
				errs = append(errs, fmt.Sprintf("%s: a selector without a metric name", n))
				return nil
			}
			if _, ok := contract[name]; !ok {
				errs = append(errs, fmt.Sprintf("%s: no such metric", name))
				return nil
			}
			names = append(names, name)
			known := labelsOf(name)
			for _, m := range n.LabelMatchers {
				if m.Name == labels.MetricName {
					continue
				}
				values, ok := known[m.Name]
				if !ok {
					errs = append(errs, fmt.Sprintf("%s has no label %s", name, m.Name))
					continue
				}
				if v := pinned[m.Name]; v != nil {
					values = v
				}
				if values == nil {
					continue
				}
				switch m.Type {
				case labels.MatchEqual:
					if !slices.Contains(values, m.Value) {
						errs = append(errs, fmt.Sprintf("%s: %s=%q is none of %q", name, m.Name, m.Value, values))
					}
				case labels.MatchRegexp:
					for _, alt := range strings.Split(m.Value, "|") {
						if !slices.Contains(values, alt) {
							errs = append(errs, fmt.Sprintf("%s: %s=~%q: %q is none of %q", name, m.Name, m.Value, alt, values))
						}
					}
				}
			}
			// Whatever aggregates it must group by labels it has.
			for _, p := range path {
				if agg, ok := p.(*parser.AggregateExpr); ok && !agg.Without {
					for _, g := range agg.Grouping {
						if _, ok := known[g]; !ok {
							errs = append(errs, fmt.Sprintf("%s: grouped by %s, a label it does not have", name, g))
						}
					}
				}
			}
		}
		return nil
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return names, nil
}

func loadRules(t *testing.T, path string) *rulefmt.RuleGroups {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(b, false, model.UTF8Validation, promqlParser, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		t.FailNow()
	}
	return groups
}

// TestAlertRules parses alerts.yaml as Prometheus does (unknown fields,
// PromQL, templates), and checks every expression against the metric
// contract and every rule's routing information.
func TestAlertRules(t *testing.T) {
	groups := loadRules(t, "observability/alerts.yaml")
	read := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a recording rule %s: the dashboard and alerts use raw metrics", g.Name, r.Record)
				continue
			}
			names, err := checkQuery(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
			}
			for _, n := range names {
				read[n] = true
			}
			if sev := r.Labels["severity"]; !slices.Contains([]string{"critical", "warning", "info"}, sev) {
				t.Errorf("%s: severity %q", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: want a summary and a description", r.Alert)
			}
			if r.For == 0 && !strings.HasPrefix(r.Expr, "absent(") {
				t.Errorf("%s fires on one evaluation: give it a for", r.Alert)
			}
		}
	}
	for _, signal := range []string{"grpc_server_handled_total", "grpc_server_handling_seconds_bucket",
		"tokenservice_password_attempts_total", "up", "tokenservice_signing_key_age_seconds",
		"tokenservice_audit_events_dropped_total", "tokenservice_audit_verification_failures_total", "tokenservice_audit_checkpoint_timestamp_seconds",
		"tokenservice_issuer_key_fetches_total"} {
		if !read[signal] {
			t.Errorf("no alert reads %s", signal)
		}
	}
}

// alertCases are series an alert must fire on and series it must not, in
// promqltest's load notation, one sample a minute from time 0; the alert's
// expression is evaluated at 30m. Every alert in alerts.yaml needs one.
var alertCases = map[string]struct{ fires, quiet string }{
	"TokenserviceTargetDown": {
		fires: `up{job="tokenservice",instance="a"} 1x30
			up{job="tokenservice",instance="b"} 0x30`,
		quiet: `up{job="tokenservice",instance="a"} 1x30
			up{job="other",instance="c"} 0x30`,
	},
	"TokenserviceAbsent": {
		fires: `up{job="other",instance="c"} 1x30`,
		quiet: `up{job="tokenservice",instance="a"} 0x30`,
	},
	"TokenserviceHighErrorRatio": {
		// 10% UNAVAILABLE, over both transports.
		fires: `grpc_server_handled_total{job="tokenservice",grpc_code="OK",transport="grpc"} 0+45x30
			grpc_server_handled_total{job="tokenservice",grpc_code="OK",transport="rest"} 0+45x30
			grpc_server_handled_total{job="tokenservice",grpc_code="Unavailable",transport="rest"} 0+10x30`,
		// Half the credentials refused is the service working.
		quiet: `grpc_server_handled_total{job="tokenservice",grpc_code="OK",transport="grpc"} 0+50x30
			grpc_server_handled_total{job="tokenservice",grpc_code="Unauthenticated",transport="grpc"} 0+49x30
			grpc_server_handled_total{job="tokenservice",grpc_code="Internal",transport="grpc"} 0+1x30`,
	},
	"TokenserviceExchangeErrors": {
		fires: `tokenservice_token_exchanges_total{job="tokenservice",outcome="ok"} 0+100x30
			tokenservice_token_exchanges_total{job="tokenservice",outcome="error"} 0+5x30`,
		quiet: `tokenservice_token_exchanges_total{job="tokenservice",outcome="ok"} 0+100x30
			tokenservice_token_exchanges_total{job="tokenservice",outcome="error"} 0x30
			tokenservice_token_exchanges_total{job="tokenservice",outcome="wrong_secret"} 0+50x30`,
	},
	"TokenserviceExchangeLatencyHigh": {
		// 5% of exchanges take 250ms to 500ms: p99 is in that bucket.
		fires: exchangeBuckets("GetAccessToken", 0, 95, 95, 100),
		// The same for another RPC, and fast exchanges.
		quiet: exchangeBuckets("CreateToken", 0, 95, 95, 100) + "\n" + exchangeBuckets("GetAccessToken", 100, 100, 100, 100),
	},
	"TokenservicePasswordAttemptSpike": {
		fires: `tokenservice_password_attempts_total{job="tokenservice",outcome="wrong_password"} 0+50x30
			tokenservice_password_attempts_total{job="tokenservice",outcome="limited"} 0+20x30`,
		quiet: `tokenservice_password_attempts_total{job="tokenservice",outcome="ok"} 0+600x30
			tokenservice_password_attempts_total{job="tokenservice",outcome="wrong_password"} 0+5x30`,
	},
	"TokenserviceRateLimiting": {
		fires: `tokenservice_rate_limit_refusals_total{job="tokenservice",limit="address"} 0+60x30`,
		quiet: `tokenservice_rate_limit_refusals_total{job="tokenservice",limit="address"} 0x30`,
	},
	"TokenserviceSigningKeyTooOld": {
		fires: fmt.Sprintf(`tokenservice_signing_key_age_seconds{job="tokenservice",instance="a"} %dx30`, 33*86400),
		quiet: fmt.Sprintf(`tokenservice_signing_key_age_seconds{job="tokenservice",instance="a"} %dx30`, 30*86400),
	},
	"TokenserviceIssuerKeysUnavailable": {
		// Replica a has failed to fetch the JWKS every minute, never
		// succeeding; b fetches fine.
		fires: `tokenservice_issuer_key_fetches_total{job="tokenservice",instance="a",issuer="https://token.actions.githubusercontent.com",document="jwks",result="error"} 0+1x30
			tokenservice_issuer_key_fetches_total{job="tokenservice",instance="a",issuer="https://token.actions.githubusercontent.com",document="jwks",result="ok"} 1x30
			tokenservice_issuer_key_fetches_total{job="tokenservice",instance="b",issuer="https://token.actions.githubusercontent.com",document="jwks",result="ok"} 0+1x30`,
		// Failures, but fetches succeed in between (a flaky issuer, the
		// keys fresh); and failures that stopped 20 minutes ago.
		quiet: `tokenservice_issuer_key_fetches_total{job="tokenservice",instance="a",issuer="https://token.actions.githubusercontent.com",document="jwks",result="error"} 0+1x30
			tokenservice_issuer_key_fetches_total{job="tokenservice",instance="a",issuer="https://token.actions.githubusercontent.com",document="jwks",result="ok"} 0+1x30
			tokenservice_issuer_key_fetches_total{job="tokenservice",instance="b",issuer="https://gitlab.com",document="discovery",result="error"} 0+1x10 10x20`,
	},
	"TokenserviceAuditEventsDropped": {
		// One drop, five minutes ago.
		fires: `tokenservice_audit_events_dropped_total{job="tokenservice",instance="a"} 0x25 1x5`,
		quiet: `tokenservice_audit_events_dropped_total{job="tokenservice",instance="a"} 0x30
			tokenservice_audit_events_dropped_total{job="tokenservice",instance="b"} 3x30`, // before the window
	},
	"TokenserviceAuditTrailDoesNotVerify": {
		fires: `tokenservice_audit_verification_failures_total{job="tokenservice",instance="a"} 0x20 1x10`,
		quiet: `tokenservice_audit_verification_failures_total{job="tokenservice",instance="a"} 0x30`,
	},
	"TokenserviceAuditCheckpointStale": {
		// Signed once, at 1m, then never; a replica that never signed.
		fires: `tokenservice_audit_checkpoint_timestamp_seconds{job="tokenservice",instance="a"} 0 60x29
			tokenservice_audit_checkpoint_timestamp_seconds{job="tokenservice",instance="b"} 0x30`,
		// One replica keeps signing; a fresh one has not yet.
		quiet: `tokenservice_audit_checkpoint_timestamp_seconds{job="tokenservice",instance="a"} 0+60x30
			tokenservice_audit_checkpoint_timestamp_seconds{job="tokenservice",instance="b"} 0x30`,
	},
	"TokenserviceLastUsedFlushFailing": {
		fires: `tokenservice_last_used_flushes_total{job="tokenservice",result="ok"} 0+2x30
			tokenservice_last_used_flushes_total{job="tokenservice",result="error"} 0+1x30`,
		quiet: `tokenservice_last_used_flushes_total{job="tokenservice",result="ok"} 0+2x30
			tokenservice_last_used_flushes_total{job="tokenservice",result="error"} 0x30`,
	},
}

// exchangeBuckets is a handling-time histogram of method in which, each
// minute, le0_1, le0_25, le0_5 and inf requests take at most 100ms, 250ms,
// 500ms and any time.
func exchangeBuckets(method string, le0_1, le0_25, le0_5, inf int) string {
	var b strings.Builder
	for _, bucket := range []struct {
		le string
		n  int
	}{{"0.1", le0_1}, {"0.25", le0_25}, {"0.5", le0_5}, {"+Inf", inf}} {
		fmt.Fprintf(&b, "grpc_server_handling_seconds_bucket{job=\"tokenservice\",grpc_service=\"priv.tokenservice.v1alpha1.TokenService\",grpc_method=%q,transport=\"grpc\",le=%q} 0+%dx30\n",
			method, bucket.le, bucket.n)
	}
	return b.String()
}

// TestAlertsFire evaluates every alert's expression on series that should
// make it fire, and on series that should not, with Prometheus's own engine.
func TestAlertsFire(t *testing.T) {
	groups := loadRules(t, "observability/alerts.yaml")
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 100000, Timeout: 10 * time.Second, Parser: promqlParser})
	seen := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			seen[r.Alert] = true
			c, ok := alertCases[r.Alert]
			if !ok {
				t.Errorf("%s: no case in alertCases", r.Alert)
				continue
			}
			t.Run(r.Alert, func(t *testing.T) {
				for _, sc := range []struct {
					series string
					fire   bool
				}{{c.fires, true}, {c.quiet, false}} {
					q, err := engine.NewInstantQuery(context.Background(), loadSeries(t, sc.series), nil, r.Expr, time.Unix(0, 0).Add(30*time.Minute))
					if err != nil {
						t.Fatal(err)
					}
					res := q.Exec(context.Background())
					if res.Err != nil {
						t.Fatal(res.Err)
					}
					v, err := res.Vector()
					if err != nil {
						t.Fatal(err)
					}
					if fired := len(v) > 0; fired != sc.fire {
						t.Errorf("fired %v (%v), want %v, on\n%s", fired, v, sc.fire, sc.series)
					}
					q.Close()
				}
			})
		}
	}
	for name := range alertCases {
		if !seen[name] {
			t.Errorf("alertCases has %s, alerts.yaml does not", name)
		}
	}
}

// loadSeries is an in-memory storage of the series described, one a line, in
// promqltest's notation (metric{labels} 0+10x30), a sample a minute from time
// 0. (promqltest itself would bring in the TSDB and double the build time.)
func loadSeries(t *testing.T, desc string) storage.Queryable {
	t.Helper()
	var series []storage.Series
	for line := range strings.Lines(desc) {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		lset, values, err := promqlParser.ParseSeriesDesc(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		var samples []chunks.Sample
		for i, v := range values {
			if !v.Omitted {
				samples = append(samples, floatSample{t: int64(i) * time.Minute.Milliseconds(), f: v.Value})
			}
		}
		series = append(series, storage.NewListSeries(lset, samples))
	}
	slices.SortFunc(series, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return storage.QueryableFunc(func(int64, int64) (storage.Querier, error) {
		return &storage.MockQuerier{SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			var matched []storage.Series
			for _, s := range series {
				if matchesAll(s.Labels(), ms) {
					matched = append(matched, s)
				}
			}
			return &seriesSet{series: matched, i: -1}
		}}, nil
	})
}

func matchesAll(l labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(l.Get(m.Name)) {
			return false
		}
	}
	return true
}

type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }

type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// dashboard is the part of Grafana's dashboard model these tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []target                 `json:"targets"`
	Panels  []panel                  `json:"panels"` // a collapsed row's
}

type target struct {
	RefID string `json:"refId"`
	Expr  string `json:"expr"`
}

// grafanaVariables are what Grafana puts in a query before Prometheus sees it.
var grafanaVariables = strings.NewReplacer(
	"${datasource}", "", "$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
	"${job}", "tokenservice", "$job", "tokenservice",
)

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("observability/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("uid %q, title %q, schemaVersion %d: Grafana needs them", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["job"] == "" {
		t.Errorf("variables %v, want datasource (a data source picker) and job", vars)
	}

	ids := map[int]bool{}
	read := map[string][]string{} // metric: the expressions reading it
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel %q: id %d is taken", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, p.GridPos)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			if strings.Contains(p.Title, "p99") && !slices.ContainsFunc(p.Targets, func(tg target) bool { return strings.Contains(tg.Expr, "histogram_quantile(0.99,") }) {
				t.Errorf("panel %q: no 99th percentile", p.Title)
			}
			for _, tg := range p.Targets {
				expr := grafanaVariables.Replace(tg.Expr)
				if strings.Contains(expr, "$") {
					t.Errorf("panel %q: %q uses a variable the dashboard does not define", p.Title, tg.Expr)
					continue
				}
				names, err := checkQuery(expr)
				if err != nil {
					t.Errorf("panel %q, query %s: %v", p.Title, tg.RefID, err)
				}
				for _, n := range names {
					read[n] = append(read[n], expr)
				}
			}
		}
	}
	walk(d.Panels)

	// The signals the dashboard is for.
	for _, want := range []struct{ what, metric, also string }{
		{"the error ratio", "grpc_server_handled_total", "grpc_code=~"},
		{"the exchange's p99", "grpc_server_handling_seconds_bucket", "histogram_quantile(0.99"},
		{"password attempts", "tokenservice_password_attempts_total", ""},
		{"replicas up", "up", ""},
		{"the signing key's age", "tokenservice_signing_key_age_seconds", ""},
		{"audit events sealed by action", "tokenservice_audit_events_total", "by (action)"},
		{"audit events dropped", "tokenservice_audit_events_dropped_total", ""},
		{"checkpoints refused", "tokenservice_audit_verification_failures_total", ""},
		{"the audit checkpoint's age", "tokenservice_audit_checkpoint_timestamp_seconds", "time() -"},
		{"federated exchanges by issuer and outcome", "tokenservice_federated_exchanges_total", "by (issuer, outcome)"},
		{"federated exchanges refused by outcome", "tokenservice_federated_exchanges_total", `outcome!="ok"`},
		{"issuer key fetches by issuer", "tokenservice_issuer_key_fetches_total", "by (issuer, document, result)"},
		{"issuer key fetch failures by issuer", "tokenservice_issuer_key_fetches_total", `result="error"`},
	} {
		if !slices.ContainsFunc(read[want.metric], func(e string) bool { return strings.Contains(e, want.also) }) {
			t.Errorf("no panel shows %s (%s %s)", want.what, want.metric, want.also)
		}
	}
}

// TestQueryContract proves checkQuery refuses what it is there to refuse.
func TestQueryContract(t *testing.T) {
	for _, bad := range []string{
		`rate(tokenservice_token_exchange_total[5m])`,                              // no such metric
		`rate(tokenservice_token_exchanges_total{outcome="wrong-secret"}[5m])`,     // no such value
		`rate(tokenservice_password_attempts_total{outcome=~"wrong|limited"}[5m])`, // nor here
		`sum by (method) (rate(grpc_server_handled_total[5m]))`,                    // no such label
		`rate(grpc_server_handled_total{grpc_method="Exchange"}[5m])`,              // not the exchange
		`up{job="tokenservices"}`,                                                  // not the job
		`sum(rate(grpc_server_handled_total{grpc_code="UNAVAILABLE"}[5m]))`,        // Go's spelling is Unavailable
		`rate(tokenservice_bearer_checks_total{credential="jwt"}[5m])`,             // api_token or access_token
	} {
		if _, err := checkQuery(bad); err == nil {
			t.Errorf("checkQuery accepted %s", bad)
		}
	}
	if _, err := checkQuery(`sum by (job, le) (rate(grpc_server_handling_seconds_bucket{job="tokenservice",grpc_method="GetAccessToken"}[5m]))`); err != nil {
		t.Error(err)
	}
}
