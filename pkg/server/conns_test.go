package server

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

func TestDefaultConnCaps(t *testing.T) {
	for _, tc := range []struct {
		nofile int
		want   connCaps
	}{
		{256, connCaps{http: 91, grpc: 92, metrics: 9}},
		{1024, connCaps{http: 365, grpc: 365, metrics: 38}},
		{20000, connCaps{http: 7468, grpc: 7468, metrics: 64}},
		{16, connCaps{http: 1, grpc: 1, metrics: 1}}, // below the headroom: one each
		{1 << 62, defaultConnCaps(maxFileLimit)},     // "unlimited"
	} {
		got := defaultConnCaps(tc.nofile)
		if got != tc.want {
			t.Errorf("defaultConnCaps(%d) = %+v, want %+v", tc.nofile, got, tc.want)
		}
		if sum := got.http + got.grpc + got.metrics; tc.nofile > 64 && sum > tc.nofile-64 {
			t.Errorf("defaultConnCaps(%d) leaves %d descriptors, under the headroom of 64", tc.nofile, tc.nofile-sum)
		}
	}
}

func TestCapsOverFileLimit(t *testing.T) {
	caps := defaultConnCaps(1024)
	def := Limits{MaxHTTPConns: caps.http, MaxGRPCConns: caps.grpc, MaxMetricsConns: caps.metrics}
	if msg := capsOverFileLimit(def, true, 1024); msg != "" {
		t.Errorf("the default caps are warned about: %s", msg)
	}
	high := def
	high.MaxHTTPConns = 2000
	if msg := capsOverFileLimit(high, true, 1024); msg == "" {
		t.Error("a cap over the open-file limit is not warned about")
	}
	metricsOff := def
	metricsOff.MaxMetricsConns = 1000
	if msg := capsOverFileLimit(metricsOff, false, 1024); msg != "" {
		t.Errorf("the cap of a metrics listener that is off is counted: %s", msg)
	}
}

// A gRPC connection that never sends the HTTP/2 preface is closed after
// the connection timeout, and one that has had no call for the maximum idle
// time after that (grpc-go's defaults: 120s, and never).
func TestGRPCClosesSilentAndIdleConnections(t *testing.T) {
	srv := startLimited(t, &pb.UnimplementedTokenServiceServer{}, Limits{
		GRPCConnectionTimeout: 200 * time.Millisecond,
		GRPCMaxConnectionIdle: 300 * time.Millisecond,
	})

	silent, err := net.Dial("tcp", srv.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if !closedWithin(silent, 3*time.Second) {
		t.Error("a gRPC connection that said nothing was kept past the connection timeout")
	}

	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if !conn.WaitForStateChange(ctx, connectivity.Ready) {
		t.Error("a gRPC connection with no call was kept past the maximum idle time")
	}
}
