package verifier_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/tokenservice/tokenservice/pkg/verifier"
)

// A service accepts tokenservice's access tokens on every request to its
// handler: the keys come from the issuer's discovery document, and the
// handler finds the token's claims in the request's context.
func Example() {
	v, err := verifier.New(context.Background(), verifier.Config{
		Issuer:   "https://tokens.example.com", // tokenservice's --issuer
		Audience: "https://tokens.example.com", // its --audience (default: the issuer)
	})
	if err != nil {
		log.Fatal(err)
	}
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := verifier.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello, %s\n", claims.Subject)
	})
	log.Fatal(http.ListenAndServe(":8000", v.Middleware(hello)))
}
