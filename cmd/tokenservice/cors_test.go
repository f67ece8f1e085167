package main

import (
	"net/http"
	"testing"

	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

func preflight(t *testing.T, base, origin string) http.Header {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, base+"/v1alpha1/tokens", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "authorization")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header
}

func TestCORS(t *testing.T) {
	off := startService(t, storetest.MustConfig(t, "sqlite"))
	if h := preflight(t, off.httpURL, "https://app.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS is on by default: %v", h)
	}

	on := startService(t, storetest.MustConfig(t, "sqlite"), "TOKENSERVICE_CORS_ORIGINS", "https://app.example, https://admin.example")
	if h := preflight(t, on.httpURL, "https://app.example"); h.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("an allowed origin's preflight: %v", h)
	}
	if h := preflight(t, on.httpURL, "https://evil.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("an origin off the list was allowed: %v", h)
	}
}
