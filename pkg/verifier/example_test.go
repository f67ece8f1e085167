package verifier_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/tokenservice/tokenservice/pkg/verifier"
)

// An orders API accepts tokenservice's access tokens minted for it (its
// URI is one of the service's --resources) that carry the orders:read scope:
// the keys come from the issuer's discovery document, and the handler finds
// the token's claims in the request's context.
func Example() {
	v, err := verifier.New(context.Background(), verifier.Config{
		Issuer:   "https://tokens.example.com", // tokenservice's --issuer
		Audience: "https://orders.example.com", // this API: one of its --resources
	})
	if err != nil {
		log.Fatal(err)
	}
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := verifier.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "orders of %s\n", claims.Subject)
	})
	log.Fatal(http.ListenAndServe(":8000", v.Middleware(orders, verifier.RequireScopes("orders:read"))))
}
