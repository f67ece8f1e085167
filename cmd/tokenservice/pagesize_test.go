package main

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"testing"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// A page size above the maximum gets the maximum (AIP-158: "if the page
// size is greater than the maximum, coerce it"), as the field's
// documentation says: over gRPC up to the largest uint32, over REST any
// whole number, however long.
func TestPageSizeAboveTheMaximumGetsTheMaximum(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		s.mustUser(t, "paula", "human")
		a := rpc{t, s.grpcCaller()}
		tok := a.login("paula")
		for range pagetoken.MaxPageSize {
			a.mustCreate(tok, &pb.CreateTokenRequest{})
		}
		for _, c := range s.callers(t) {
			for _, size := range []uint32{pagetoken.MaxPageSize + 1, math.MaxUint32} {
				page, err := rpc{t, c}.list(tok, &pb.ListTokensRequest{PageSize: size})
				if err != nil || len(page.GetTokens()) != pagetoken.MaxPageSize || page.GetNextPageToken() == "" {
					t.Errorf("%s, page size %d: %d tokens, next %q, %v; want %d and a next page",
						c.name, size, len(page.GetTokens()), page.GetNextPageToken(), err, pagetoken.MaxPageSize)
				}
			}
		}
		for _, query := range []string{"pageSize=4294967296", "page_size=99999999999999999999999"} {
			req, _ := http.NewRequest("GET", s.httpURL+"/v1alpha1/tokens?"+query, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var page struct {
				Tokens        []json.RawMessage `json:"tokens"`
				NextPageToken string            `json:"nextPageToken"`
			}
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &page) != nil || len(page.Tokens) != pagetoken.MaxPageSize {
				t.Errorf("GET /v1alpha1/tokens?%s: HTTP %d with %d tokens, want 200 with %d: %.300s",
					query, resp.StatusCode, len(page.Tokens), pagetoken.MaxPageSize, body)
			}
		}
	})
}
