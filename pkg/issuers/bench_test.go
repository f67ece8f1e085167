package issuers

import (
	"context"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// BenchmarkVerify is one warm verification of a platform's token, RS256 as
// GitHub, GitLab and Kubernetes sign them: what a federated exchange pays
// beside matching and minting.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA} {
		b.Run(string(alg), func(b *testing.B) {
			key := mustKey(b, alg, "k1")
			ti := newTestIssuer(b, key)
			c := newClock()
			s := mustSet(b, c, Config{}, Issuer{URL: ti.URL})
			raw := mustSign(b, key, claimsFor(ti.URL, c.Now()), nil)
			ctx := context.Background()
			if _, err := s.Verify(ctx, raw); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Verify(ctx, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
