// Command dev-idp runs an OpenID Provider on this machine for trying the
// console's single sign-on (make idp; README, "Sign in with your identity
// provider"): zitadel/oidc's example OP, through internal/devidp, at
// http://localhost:9998, with the client tokenservice (secret dev-secret)
// registered for the service's callback on ports 8080 and 18080, and three
// people, each with the password verysecure. It keeps nothing and checks
// plain-text passwords: for trying only.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/tokenservice/tokenservice/internal/devidp"
)

func main() {
	addr := flag.String("addr", "localhost:9998", "listen address; the issuer is http://<addr>")
	flag.Parse()
	issuer := "http://" + *addr
	idp, h := devidp.New(issuer, []devidp.Person{
		{ID: "u-alice", Username: "alice@example.com", Email: "alice@example.com", Password: "verysecure",
			Groups: []string{"tokenservice-users", "tokenservice-admins"}},
		{ID: "u-bob", Username: "bob@example.com", Email: "bob@example.com", Password: "verysecure",
			Groups: []string{"tokenservice-users"}},
		{ID: "u-carol", Username: "carol@example.com", Email: "carol@example.com", Password: "verysecure",
			Groups: []string{"marketing"}},
	})
	idp.RegisterClient("tokenservice", "dev-secret",
		"http://localhost:8080/console/sso/callback", "http://localhost:18080/console/sso/callback")
	fmt.Printf("dev-idp: an OpenID Provider for trying only, issuer %s\n", issuer)
	fmt.Println("  client tokenservice, secret dev-secret; people alice@example.com (admin), bob@example.com, carol@example.com (not in tokenservice-users), password verysecure")
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
