package telemetry

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Tracing is off unless the standard variables ask for an exporter.
func TestEnabled(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none"}, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, false},
	} {
		if got := Enabled(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("%v: Enabled = %v, want %v", tc.env, got, tc.want)
		}
	}
}

// With an exporter asked for, the provider is the SDK's, named after the
// service unless OTEL_SERVICE_NAME says otherwise; without, a no-op one.
func TestNewTracerProvider(t *testing.T) {
	ctx := context.Background()
	off, shutdown, err := NewTracerProvider(ctx, func(string) string { return "" })
	if err != nil || shutdown(ctx) != nil {
		t.Fatal(err)
	}
	if _, ok := off.(*sdktrace.TracerProvider); ok {
		t.Error("tracing on with no variable set")
	}

	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	for env, want := range map[string]string{"": ServiceName, "tokens-eu": "tokens-eu"} {
		t.Setenv("OTEL_SERVICE_NAME", env)
		tp, shutdown, err := NewTracerProvider(ctx, func(k string) string { return map[string]string{"OTEL_TRACES_EXPORTER": "console"}[k] })
		if err != nil {
			t.Fatal(err)
		}
		sdk, ok := tp.(*sdktrace.TracerProvider)
		if !ok {
			t.Fatalf("OTEL_TRACES_EXPORTER=console: %T, want the SDK's provider", tp)
		}
		_, span := sdk.Tracer("test").Start(ctx, "x")
		span.End()
		name := span.(sdktrace.ReadOnlySpan).Resource().Set()
		if v, _ := name.Value("service.name"); v.AsString() != want {
			t.Errorf("OTEL_SERVICE_NAME=%q: service.name %q, want %q", env, v.AsString(), want)
		}
		if err := shutdown(ctx); err != nil {
			t.Error(err)
		}
	}
}
