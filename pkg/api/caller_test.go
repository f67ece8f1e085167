package api

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/tokenservice/tokenservice/pkg/access"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// TestCallerRefusesBadBasicCredentials: Basic credentials that do not
// decode, or sent to a method that takes none, are refused saying how to
// send a credential, before any password is checked (Deps is empty: a
// check would panic).
func TestCallerRefusesBadBasicCredentials(t *testing.T) {
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	takesBasic := access.Rule{Credential: access.Bearer, Basic: true}
	for name, tc := range map[string]struct {
		authorization string
		rule          access.Rule
		want          error
	}{
		"not base64":                            {"Basic !!!", takesBasic, errBadBasic},
		"no colon":                              {basic("alice"), takesBasic, errBadBasic},
		"no username":                           {basic(":secret"), takesBasic, errBadBasic},
		"a username too long":                   {basic(strings.Repeat("u", 65) + ":secret"), takesBasic, errBadBasic},
		"a password too long":                   {basic("alice:" + strings.Repeat("p", domain.MaxPasswordBytes+1)), takesBasic, errBadBasic},
		"Basic where none taken":                {basic("alice:secret"), access.Rule{Credential: access.Bearer}, errBasicNotTaken},
		"Basic where the body takes a password": {basic("alice:secret"), access.Rule{Credential: access.BearerOrPasswordInBody}, errBasicNotTakenInBody},
		"two credentials":                       {"", takesBasic, domain.ErrUnauthenticated},
	} {
		md := metadata.Pairs("authorization", tc.authorization)
		if tc.authorization == "" {
			md = metadata.Pairs("authorization", basic("a:b"), "authorization", "Bearer x")
		}
		_, err := caller(metadata.NewIncomingContext(context.Background(), md), Deps{}, tc.rule)
		if err != tc.want {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
