package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// The README's tables are those the protos' access rules make: a method
// added, or a scope changed, without `make generate` fails here (and in
// make check-generate).
func TestREADMEIsCurrent(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := rewrite(readme)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readme, want) {
		t.Error("the README's API or scope table differs from the protos' access rules: run make generate")
	}
	for _, row := range []string{
		"| GetToken | `GET /v1alpha1/tokens/{tokenId}` | a bearer | `tokens:read` |",
		"| `users:write` | CreateUser, DeleteUser, ChangePassword |",
	} {
		if !strings.Contains(string(readme), row) {
			t.Errorf("the README lacks the row %s", row)
		}
	}
}

func TestJSONNames(t *testing.T) {
	for in, want := range map[string]string{
		"/v1alpha1/tokens/{token_id}:rotate": "/v1alpha1/tokens/{tokenId}:rotate",
		"/v1/{a_b_c}/x_y":                    "/v1/{aBC}/x_y",
		"/v1/tokens":                         "/v1/tokens",
	} {
		if got := jsonNames(in); got != want {
			t.Errorf("jsonNames(%q) = %q, want %q", in, got, want)
		}
	}
}
