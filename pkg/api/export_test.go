package api

import "github.com/tokenservice/tokenservice/pkg/access"

// NewGuardOf is newGuard, for tests that try rules no method declares yet.
func NewGuardOf(deps Deps, rules ...access.Rule) *Guard { return newGuard(deps, rules) }
