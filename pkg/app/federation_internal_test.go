package app

import (
	"encoding/base64"
	"testing"

	"github.com/tokenservice/tokenservice/pkg/issuers"
)

// A refused token is credited to a trusted issuer (the metrics' label, the
// audit's detail) only when its iss claim, spelt exactly so, names one:
// not when another spelling ("ISS") does.
func TestTrustedIssuerOfReadsIssExactly(t *testing.T) {
	const trusted = "https://token.actions.githubusercontent.com"
	list, err := issuers.ParseList(trusted)
	if err != nil {
		t.Fatal(err)
	}
	set, err := issuers.New(issuers.Config{Issuers: list})
	if err != nil {
		t.Fatal(err)
	}
	ti := trustedIssuers{set}
	jwt := func(payload string) string {
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(payload)) + "."
	}
	for payload, want := range map[string]string{
		`{"iss":"` + trusted + `"}`:                              trusted,
		`{"iss":"https://evil.example","ISS":"` + trusted + `"}`: "",
		`{"ISS":"` + trusted + `","iss":"https://evil.example"}`: "",
		`{"Iss":"` + trusted + `"}`:                              "",
		`{"iss":"https://evil.example"}`:                         "",
		`{"iss":1}`:                                              "",
		`not json`:                                               "",
	} {
		if got := ti.trustedIssuerOf(jwt(payload)); got != want {
			t.Errorf("trustedIssuerOf(%s) = %q, want %q", payload, got, want)
		}
	}
}

// The defaults agree: the memory limit leaves a full cache of the default
// size room, so the collector does not run without pause once it fills.
func TestDefaultMemoryLimitFitsTheDefaultCache(t *testing.T) {
	if floor := MemoryFloorMiB(DefaultCacheSize); floor > DefaultMemoryLimitMiB {
		t.Errorf("a full cache of %d tokens needs a limit of %d MiB; the default is %d", DefaultCacheSize, floor, DefaultMemoryLimitMiB)
	}
	if MemoryFloorMiB(4*DefaultCacheSize) <= DefaultMemoryLimitMiB {
		t.Error("the floor does not grow with the cache")
	}
}
