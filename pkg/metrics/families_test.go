package metrics_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/cache"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/issuers"
	"github.com/tokenservice/tokenservice/pkg/metrics"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"
)

const password = "correct horse battery staple"

// Families is what the running service serves: the app's /metrics, once a
// call has come over each transport, has the same families, types, labels
// and fixed label values. A collector the app registers that Families
// does not (or the other way round) fails it.
func TestFamiliesAreWhatTheAppServes(t *testing.T) {
	cfg := apptest.Config(t, "sqlite")
	cfg.Server.MetricsAddr = "127.0.0.1:0"
	// A trusted issuer has series of its own from the start (never fetched here).
	cfg.Federation.Issuers.Issuers = []issuers.Issuer{{URL: "http://127.0.0.1:1"}}
	a := apptest.MustStart(t, cfg)

	// One call answered over each transport: a token made with a password.
	if _, err := a.Users().Create(context.Background(), users.Operator(), users.CreateInput{Username: "alice", Password: password}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+a.HTTPAddr()+"/v1alpha1/tokens", "application/json",
		strings.NewReader(`{"username": "alice", "password": "`+password+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST CreateToken: %s", resp.Status)
	}
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pb.NewTokenServiceClient(conn).CreateToken(ctx, &pb.CreateTokenRequest{Username: "alice", Password: password}); err != nil {
		t.Fatalf("gRPC CreateToken: %v", err)
	}

	resp, err = http.Get("http://" + a.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	scraped, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	mfs := slices.Collect(maps.Values(scraped))
	want, err := metrics.Families()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, metrics.FamiliesOf(mfs)); diff != "" {
		t.Errorf("metrics.Families() and the app's /metrics differ (-Families +served):\n%s", diff)
	}
}

// Every observation lands in a family and label value Families names:
// each observer method, with each outcome the rules can report, adds no
// series that Families does not list (a label value nobody pre-created
// would be one a dashboard cannot know of).
func TestObservationsStayInTheFamilies(t *testing.T) {
	m := metrics.New()
	m.TokenCreated()
	for _, check := range []tokens.Check{tokens.CheckExchange, tokens.CheckBearerAPIToken, tokens.CheckBearerAccessToken} {
		for _, o := range []tokens.Outcome{tokens.OutcomeOK, tokens.OutcomeMalformed, tokens.OutcomeUnknown, tokens.OutcomeWrongSecret,
			tokens.OutcomeInvalid, tokens.OutcomeRevoked, tokens.OutcomeExpired, tokens.OutcomeError} {
			m.CredentialChecked(check, o)
		}
	}
	for _, o := range []users.PasswordOutcome{users.PasswordOK, users.PasswordWrong, users.PasswordUnknownUser,
		users.LimitedByAddress, users.LimitedByUserAndAddress, users.LimitedByUser, users.PasswordSignInOff} {
		m.PasswordChecked(o)
	}
	m.UserCreationLimited()
	for _, k := range []cache.Kind{cache.Tokens, cache.Users, cache.FederatedCredentials} {
		m.CacheRead(k, true)
		m.CacheRead(k, false)
	}
	m.LastUsedFlushed(3, nil)
	m.LastUsedFlushed(0, context.DeadlineExceeded)
	m.FeedPolled(2, nil)
	m.FeedPolled(0, context.DeadlineExceeded)
	m.SigningKeyAdded()
	m.SigningKeyReloadFailed()
	for _, a := range domain.AuditActions {
		m.AuditEventsSealed([]*domain.AuditEvent{{Action: a}})
	}
	m.AuditEventsDropped(1)
	m.TrustedIssuers([]string{"https://issuer.example"})
	for _, issuer := range []string{"", "https://issuer.example"} {
		for _, o := range metrics.ExchangeOutcomes {
			m.Exchanged(issuer, o)
		}
	}
	for _, doc := range []string{issuers.DocumentDiscovery, issuers.DocumentJWKS} {
		m.Fetched("https://issuer.example", doc, nil)
		m.Fetched("https://issuer.example", doc, errors.New("refused"))
	}
	m.AuditCheckpointWritten(time.Now())
	m.AuditVerificationFailed()

	mfs, err := m.Gather()
	if err != nil {
		t.Fatal(err)
	}
	families, err := metrics.Families()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]metrics.Family{}
	for _, f := range families {
		known[f.Name] = f
	}
	for _, mf := range mfs {
		f, ok := known[mf.GetName()]
		if !ok {
			t.Errorf("%s: not in metrics.Families()", mf.GetName())
			continue
		}
		for _, metric := range mf.GetMetric() {
			if strings.HasPrefix(mf.GetName(), "tokenservice_") && metric.GetCounter().GetValue() == 0 && metric.GetGauge().GetValue() == 0 {
				t.Errorf("%s%v: never observed; the test misses an observer", mf.GetName(), metric.GetLabel())
			}
			for _, l := range metric.GetLabel() {
				values, ok := f.Labels[l.GetName()]
				if !ok {
					t.Errorf("%s: label %s is not in metrics.Families()", mf.GetName(), l.GetName())
				} else if values != nil && !slices.Contains(values, l.GetValue()) {
					t.Errorf("%s: %s=%q is none of %q", mf.GetName(), l.GetName(), l.GetValue(), values)
				}
			}
		}
	}
}
