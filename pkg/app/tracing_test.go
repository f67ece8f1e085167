package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenservice/tokenservice/internal/testlog"
	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// A REST request carrying a W3C traceparent gives one trace, the client's:
// the HTTP request's span, the RPC's under it, the database calls' under
// that; no span carries the password, the token's secret or a query's
// values (the username); the request's log line names the trace.
func TestOneTraceFromRESTToTheDatabase(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	cfg := apptest.Config(t, "mysql")
	cfg.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	logger, logs := testlog.NewJSON(slog.LevelInfo)
	cfg.Logger = logger
	a := apptest.MustStart(t, cfg)
	const password = "correct horse battery staple"
	if _, err := a.Users().Create(context.Background(), users.Operator(), users.CreateInput{Username: "alice", Password: password}); err != nil {
		t.Fatal(err)
	}
	exporter.Reset()

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("POST", "http://"+a.HTTPAddr()+"/v1alpha1/tokens", strings.NewReader(`{"username":"alice","password":"`+password+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CreateToken: %s %s", resp.Status, body)
	}
	var created struct{ Token string }
	json.Unmarshal(body, &created)

	parsed, ok := auth.ParseAPIToken(created.Token)
	if !ok {
		t.Fatalf("CreateToken answered %s", body)
	}
	secret := parsed.Secret
	spans := exporter.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
		if s.SpanContext.TraceID().String() != traceID {
			t.Errorf("span %q is in trace %s, not the client's", s.Name, s.SpanContext.TraceID())
		}
		for _, kv := range s.Attributes {
			v := kv.Value.String()
			for _, never := range []string{password, secret, "alice"} {
				if strings.Contains(v, never) {
					t.Errorf("span %q attribute %s carries %q: %s", s.Name, kv.Key, never, v)
				}
			}
		}
	}
	// The chain: a database span, under the RPC's, under the HTTP request's.
	var chain []string
	for _, s := range spans {
		if !strings.HasPrefix(s.InstrumentationScope.Name, "gorm.io") {
			continue
		}
		for cur, ok := s, true; ok; cur, ok = byID[cur.Parent.SpanID()] {
			chain = append(chain, cur.InstrumentationScope.Name+" "+cur.Name)
		}
		break
	}
	want := []string{"gorm.io", "otelgrpc", "otelhttp POST"}
	if len(chain) != 3 {
		t.Fatalf("the span chain from a database call up: %q; want %q (%d spans)", chain, want, len(spans))
	}
	for i, w := range want {
		if !strings.Contains(chain[i], w) {
			t.Errorf("span chain %q: link %d does not name %q", chain, i, w)
		}
	}
	if !strings.Contains(chain[1], "/CreateToken") {
		t.Errorf("the RPC span %q does not name the method", chain[1])
	}
	if !strings.Contains(logs.String(), `"trace_id":"`+traceID+`"`) {
		t.Errorf("no log line names the trace:\n%s", logs)
	}
}
