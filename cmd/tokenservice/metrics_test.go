package main

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// samples are a scrape's values by series: name{label="value",...}, labels
// sorted; a histogram gives its _count.
type samples map[string]float64

// scrape fetches and parses url with the Prometheus text parser, and lints
// the service's own metrics with promlint.
func scrape(t *testing.T, url string) samples {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	var own []*dto.MetricFamily
	out := samples{}
	for name, f := range families {
		if strings.HasPrefix(name, "tokenservice_") {
			own = append(own, f)
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(labels)
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[strings.Replace(key, "{", "_count{", 1)] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	problems, err := promlint.NewWithMetricFamilies(own).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
	return out
}

// series names a series as samples keys it: labels as name, value pairs.
func series(name string, labels ...string) string {
	var ls []string
	for i := 0; i+1 < len(labels); i += 2 {
		ls = append(ls, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	slices.Sort(ls)
	return name + "{" + strings.Join(ls, ",") + "}"
}

// A flow over REST and gRPC moves each of the service's counters as it
// should, the RPC metrics by transport, and the runtime's, process's and
// database pool's collectors are there; /metrics is on a listener of its
// own, and on the public port only when asked.
func TestMetrics(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "mysql"), "TOKENSERVICE_LAST_USED_FLUSH_INTERVAL", "100ms")
	metricsURL := "http://" + s.app.MetricsAddr() + "/metrics"
	before := scrape(t, metricsURL)
	s.mustUser(t, "alice", "human")
	rest, grpc := rpc{t, s.restCaller(t)}, rpc{t, s.grpcCaller()}

	apiToken := rest.login("alice")
	for _, name := range []string{"alice", "nobody"} { // a wrong password, an unknown user
		_, err := grpc.create("", &pb.CreateTokenRequest{Username: name, Password: "wrong password!"})
		wantCode(t, "a wrong password", err, 16)
	}
	var access string
	for range 2 { // the second from the cache
		resp, err := grpc.exchange("", apiToken)
		if err != nil {
			t.Fatal(describe(err))
		}
		access = resp.GetAccessToken()
	}
	parsed, _ := auth.ParseAPIToken(apiToken)
	stranger, _ := auth.NewAPIToken(rand.Reader)
	wrongSecret := auth.APIToken{ID: parsed.ID, Secret: stranger.Secret}.String()
	badChecksum := apiToken[:len(apiToken)-1] + otherDigit(apiToken[len(apiToken)-1])
	revoked := rest.mustCreate(apiToken, &pb.CreateTokenRequest{})
	if err := rest.del(apiToken, revoked.GetMetadata().GetId()); err != nil {
		t.Fatal(describe(err))
	}
	expiring := rest.mustCreate(apiToken, &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(time.Second))})
	time.Sleep(time.Until(expiring.GetMetadata().GetExpireTime().AsTime()) + 50*time.Millisecond)
	for _, bad := range []string{badChecksum, access, stranger.String(), wrongSecret, revoked.GetToken(), expiring.GetToken()} {
		_, err := grpc.exchange("", bad)
		wantCode(t, "exchanging "+bad, err, 16)
	}
	for _, bearer := range []string{access, apiToken} {
		if _, err := grpc.list(bearer, &pb.ListTokensRequest{}); err != nil {
			t.Fatal(describe(err))
		}
	}
	_, err := grpc.list("eyJhbGciOiJFUzI1NiJ9.e30.c2ln", &pb.ListTokensRequest{})
	wantCode(t, "a forged access token", err, 16)
	_, err = grpc.list("not-a-token", &pb.ListTokensRequest{})
	wantCode(t, "a bearer that is no token", err, 16)
	for range 11 { // past the 10 a minute one username may try from one address
		_, err := grpc.create("", &pb.CreateTokenRequest{Username: "mallory", Password: "wrong password!"})
		if err == nil {
			t.Fatal("mallory got in")
		}
	}
	time.Sleep(300 * time.Millisecond) // a last-used flush

	after := scrape(t, metricsURL)
	moved := func(series string) float64 { return after[series] - before[series] }
	svc := pb.TokenService_ServiceDesc.ServiceName
	for series, want := range map[string]float64{
		series("tokenservice_api_tokens_created_total"):                                                                                                                      3,
		series("tokenservice_password_attempts_total", "outcome", "ok"):                                                                                                      1,
		series("tokenservice_password_attempts_total", "outcome", "wrong_password"):                                                                                          1,
		series("tokenservice_password_attempts_total", "outcome", "unknown_user"):                                                                                            11,
		series("tokenservice_password_attempts_total", "outcome", "limited"):                                                                                                 1,
		series("tokenservice_rate_limit_refusals_total", "limit", "user_and_address"):                                                                                        1,
		series("tokenservice_token_exchanges_total", "outcome", "ok"):                                                                                                        2,
		series("tokenservice_token_exchanges_total", "outcome", "malformed"):                                                                                                 2,
		series("tokenservice_token_exchanges_total", "outcome", "unknown"):                                                                                                   1,
		series("tokenservice_token_exchanges_total", "outcome", "wrong_secret"):                                                                                              1,
		series("tokenservice_token_exchanges_total", "outcome", "revoked"):                                                                                                   1,
		series("tokenservice_token_exchanges_total", "outcome", "expired"):                                                                                                   1,
		series("tokenservice_bearer_checks_total", "credential", "access_token", "outcome", "ok"):                                                                            1,
		series("tokenservice_bearer_checks_total", "credential", "access_token", "outcome", "invalid"):                                                                       1,
		series("tokenservice_bearer_checks_total", "credential", "access_token", "outcome", "malformed"):                                                                     1,
		series("grpc_server_handled_total", "grpc_code", "OK", "grpc_method", "CreateToken", "grpc_service", svc, "grpc_type", "unary", "transport", "rest"):                 3,
		series("grpc_server_handled_total", "grpc_code", "Unauthenticated", "grpc_method", "GetAccessToken", "grpc_service", svc, "grpc_type", "unary", "transport", "grpc"): 6,
		series("grpc_server_handling_seconds_count", "grpc_method", "GetAccessToken", "grpc_service", svc, "grpc_type", "unary", "transport", "grpc"):                        8,
	} {
		if got := moved(series); got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
	for series, atLeast := range map[string]float64{
		// Bearer checks of API tokens: the list, and each REST create and
		// delete made with apiToken.
		series("tokenservice_bearer_checks_total", "credential", "api_token", "outcome", "ok"): 4,
		series("tokenservice_cache_reads_total", "cache", "tokens", "result", "hit"):           1,
		series("tokenservice_cache_reads_total", "cache", "tokens", "result", "miss"):          1,
		series("tokenservice_last_used_flushes_total", "result", "ok"):                         1,
		series("tokenservice_last_used_flushed_tokens_total"):                                  1,
	} {
		if got := moved(series); got < atLeast {
			t.Errorf("%s moved by %v, want at least %v", series, got, atLeast)
		}
	}
	for _, present := range []string{
		series("go_goroutines"), series("process_cpu_seconds_total"), series("tokenservice_signing_key_age_seconds"),
		series("go_sql_open_connections", "db_name", "tokenservice"),
	} {
		if _, ok := after[present]; !ok {
			t.Errorf("%s missing from the scrape", present)
		}
	}

	// Not on the public port, unless asked.
	if resp, err := http.Get(s.httpURL + "/metrics"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the public port: %v, %v; want 404", resp.Status, err)
	}
	open := startService(t, storetest.MustConfig(t, "sqlite"), "TOKENSERVICE_METRICS_ON_HTTP_ADDR", "true", "TOKENSERVICE_METRICS_ADDR", "off")
	if open.app.MetricsAddr() != "" {
		t.Errorf("--metrics-addr off still listens on %s", open.app.MetricsAddr())
	}
	if got := scrape(t, open.httpURL+"/metrics"); len(got) == 0 {
		t.Error("--metrics-on-http-addr: no metrics on the public port")
	}
}

// TestExpiringTokensGauge: live tokens expiring within 7 days are counted;
// later, never-expiring and deleted ones are not.
func TestExpiringTokensGauge(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "mysql"))
	s.mustUser(t, "vic", "human")
	a := rpc{t, s.grpcCaller()}
	login := a.login("vic")
	for _, in := range []time.Duration{24 * time.Hour, 6 * 24 * time.Hour, 8 * 24 * time.Hour} {
		a.mustCreate(login, &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(in))})
	}
	deleted := a.mustCreate(login, &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(time.Hour))})
	if err := a.del(login, deleted.GetMetadata().GetId()); err != nil {
		t.Fatal(describe(err))
	}
	got := scrape(t, "http://"+s.app.MetricsAddr()+"/metrics")[series("tokenservice_api_tokens_expiring_soon")]
	if got != 2 {
		t.Errorf("tokenservice_api_tokens_expiring_soon = %v, want 2", got)
	}
}
