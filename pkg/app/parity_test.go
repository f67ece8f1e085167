package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/tokenservice/tokenservice/internal/testlog"
	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/gatewayclient"
	"github.com/tokenservice/tokenservice/pkg/httprule"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// TestInterceptorParity calls every method the REST gateway serves, over
// gRPC and over REST, with one request id each, and checks that the one
// interceptor chain ran for both: the same status code (validation, auth,
// the method, error mapping), the request id and the method in the call's
// log line (request id and logging interceptors), and the call counted
// under its transport (metrics). The REST hop changing what runs fails it.
func TestInterceptorParity(t *testing.T) {
	logger, logs := testlog.NewJSON(slog.LevelInfo)
	cfg := apptest.Config(t, "sqlite")
	cfg.Logger = logger
	cfg.Server.MetricsAddr = "127.0.0.1:0"
	a := apptest.MustStart(t, cfg)
	ctx := context.Background()
	bearer := apptest.MustUserToken(t, a, users.CreateInput{Username: "root", Password: "a password long enough", Admin: true})
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conns := map[string]grpc.ClientConnInterface{"grpc": conn, "rest": gatewayclient.New("http://"+a.HTTPAddr(), http.DefaultClient)}

	var methods []protoreflect.MethodDescriptor
	for _, m := range servedMethods(t, conn) {
		if _, ok := httprule.All().ByMethod(fullName(m)); ok {
			methods = append(methods, m)
		}
	}
	if len(methods) < 11 {
		t.Fatalf("only %d methods have REST routes", len(methods))
	}
	before := scrapeCounts(t, a.MetricsAddr())
	for _, m := range methods {
		codesBy := map[string]codes.Code{}
		for _, transport := range []string{"grpc", "rest"} {
			id := fmt.Sprintf("PARITY%s%02d", strings.ToUpper(transport), len(codesBy)+10*indexOf(methods, m))
			out, err := protoregistry.GlobalTypes.FindMessageByName(m.Output().FullName())
			if err != nil {
				t.Fatal(err)
			}
			callCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer, "x-request-id", id)
			err = conns[transport].Invoke(callCtx, fullName(m), apptest.MinimalRequest(t, m), out.New().Interface())
			codesBy[transport] = status.Code(err)
			if !loggedCall(logs.JSONLines(), id, string(m.Name())) {
				t.Errorf("%s over %s: no log line with its request id %s and method", fullName(m), transport, id)
			}
		}
		if codesBy["grpc"] != codesBy["rest"] {
			t.Errorf("%s: %v over gRPC, %v over REST: the chains differ", fullName(m), codesBy["grpc"], codesBy["rest"])
		}
	}
	after := scrapeCounts(t, a.MetricsAddr())
	for _, m := range methods {
		for _, transport := range []string{"grpc", "rest"} {
			key := string(m.Parent().FullName()) + "/" + string(m.Name()) + "/" + transport
			if got := after[key] - before[key]; got != 1 {
				t.Errorf("grpc_server_handled_total for %s over %s moved by %v, want 1", fullName(m), transport, got)
			}
		}
	}
}

func indexOf(ms []protoreflect.MethodDescriptor, m protoreflect.MethodDescriptor) int {
	for i, x := range ms {
		if x == m {
			return i
		}
	}
	return -1
}

// loggedCall reports whether a "finished call" line carries the request id and method.
func loggedCall(lines []map[string]any, id, method string) bool {
	for _, l := range lines {
		if l["msg"] == "finished call" && l["request_id"] == id && l["grpc.method"] == method {
			return true
		}
	}
	return false
}

// scrapeFamilies reads the metric families the app serves at addr.
func scrapeFamilies(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return families
}

// scrapeCounts reads grpc_server_handled_total by service/method/transport.
func scrapeCounts(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	families := scrapeFamilies(t, addr)
	out := map[string]float64{}
	for _, mt := range families["grpc_server_handled_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range mt.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		out[labels["grpc_service"]+"/"+labels["grpc_method"]+"/"+labels["transport"]] += mt.GetCounter().GetValue()
	}
	return out
}
