package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/tokenservice/tokenservice/pkg/httprule"
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

// Route variables are named as REST clients send them: the fields' JSON names.
func TestRESTTemplate(t *testing.T) {
	for method, want := range map[string]string{
		"/priv.tokenservice.v1alpha1.TokenService/RotateToken":   "/v1alpha1/tokens/{tokenId}:rotate",
		"/priv.tokenservice.v1alpha1.UserService/ChangePassword": "/v1alpha1/users/{userId}:changePassword",
		"/priv.tokenservice.v1alpha1.TokenService/ListTokens":    "/v1alpha1/tokens",
	} {
		route, ok := httprule.All().ByMethod(method)
		if !ok {
			t.Fatalf("no route for %s", method)
		}
		if got := restTemplate(route); got != want {
			t.Errorf("%s: %q, want %q", method, got, want)
		}
	}
}
