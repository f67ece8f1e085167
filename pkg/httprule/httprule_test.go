package httprule_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/httprule"
)

func TestFind(t *testing.T) {
	table := httprule.ForServices(pb.TokenService_ServiceDesc.ServiceName, pb.UserService_ServiceDesc.ServiceName)
	if len(table) != 11 {
		t.Fatalf("%d routes, want the 11 methods", len(table))
	}
	for _, tc := range []struct {
		verb, path string
		method     string
		vars       map[string]string
		allowed    []string
	}{
		{"GET", "/v1alpha1/tokens", pb.TokenService_ListTokens_FullMethodName, nil, nil},
		{"POST", "/v1alpha1/tokens", pb.TokenService_CreateToken_FullMethodName, nil, nil},
		{"GET", "/v1alpha1/tokens/abc", pb.TokenService_GetToken_FullMethodName, map[string]string{"token_id": "abc"}, nil},
		{"DELETE", "/v1alpha1/tokens/a%2Fb", pb.TokenService_DeleteToken_FullMethodName, map[string]string{"token_id": "a/b"}, nil},
		{"POST", "/v1alpha1/users/me:changePassword", pb.UserService_ChangePassword_FullMethodName, map[string]string{"user_id": "me"}, nil},
		{"PATCH", "/v1alpha1/tokens", "", nil, []string{http.MethodGet, http.MethodPost}},
		{"POST", "/v1alpha1/tokens/abc", "", nil, []string{http.MethodDelete, http.MethodGet}},
		{"GET", "/v1alpha1/nothing", "", nil, nil},
		{"GET", "/v1alpha1/tokens/abc/more", "", nil, nil},
		{"GET", "/v1alpha1/tokens/", "", nil, nil},
		{"GET", "/v1alpha1", "", nil, nil},
		{"GET", "/", "", nil, nil},
		{"POST", "/v1alpha1/tokens/abc:rotate", pb.TokenService_RotateToken_FullMethodName, map[string]string{"token_id": "abc"}, nil},
		{"POST", "/v1alpha1/tokens/abc/x:rotate", "", nil, nil},
		{"POST", "/v1alpha1/tokens:rotate", "", nil, nil},
	} {
		r, vars, found, allowed := table.Find(tc.verb, tc.path)
		if found != (tc.method != "") || (found && r.FullMethod() != tc.method) {
			t.Errorf("%s %s: found %v %s, want %q", tc.verb, tc.path, found, r.FullMethod(), tc.method)
		}
		if diff := cmp.Diff(tc.vars, vars); diff != "" {
			t.Errorf("%s %s: variables (-want +got):\n%s", tc.verb, tc.path, diff)
		}
		if !slices.Equal(tc.allowed, allowed) {
			t.Errorf("%s %s: allowed %v, want %v", tc.verb, tc.path, allowed, tc.allowed)
		}
	}
}

// TestCustomMethods checks which custom methods a path with another one
// has: those of the path its last segment's ':' ends.
func TestCustomMethods(t *testing.T) {
	table := httprule.ForServices(pb.TokenService_ServiceDesc.ServiceName, pb.UserService_ServiceDesc.ServiceName)
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/v1alpha1/tokens/abc:rotat", []string{"POST /v1alpha1/tokens/{token_id}:rotate"}},
		{"/v1alpha1/tokens/abc:rotate", []string{"POST /v1alpha1/tokens/{token_id}:rotate"}},
		{"/v1alpha1/users/me:changepassword", []string{"POST /v1alpha1/users/{user_id}:changePassword"}},
		{"/v1alpha1/tokens/abc", nil},
		{"/v1alpha1/tokens:rotate", nil},
		{"/v1alpha1/tokens/:rotate", nil},
		{"/v1alpha1/tokens/a:b/c", nil},
		{"/v1alpha1/nothing/abc:rotate", nil},
	} {
		var got []string
		for _, r := range table.CustomMethods(tc.path) {
			got = append(got, r.Verb+" "+r.Template)
		}
		if !slices.Equal(tc.want, got) {
			t.Errorf("%s: custom methods %v, want %v", tc.path, got, tc.want)
		}
	}
}
