#!/usr/bin/env bash
# Runs the README's quick-start session, verbatim, against a real server on the
# README's ports (8080, 9090), then lists and calls the service with grpcurl
# through reflection. Part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0
check() { # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name" >&2; fi
}

for port in 8080 9090; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "readme-session: port $port is in use (a 'make run' still going?); stop it and retry" >&2
    exit 1
  fi
done

work=$(mktemp -d)
export TOKENSERVICE_DB_DSN="$work/tokenservice.db" # the session's db command uses it too
export XDG_CONFIG_HOME="$work/config"              # the session's login keeps its token here, not in ~/.config
bin/tokenservice serve --log-format text >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs localhost:8080/readyz >/dev/null 2>&1 && break; sleep 0.1; done

# The shell block between the session markers, exactly as the README shows it.
awk '/<!-- session:start -->/{on=1; next} /<!-- session:end -->/{on=0} on && /^```/{code=!code; next} on && code' README.md >"$work/session.sh"
check "the README has a session" test -s "$work/session.sh"
out=$(bash -euo pipefail "$work/session.sh" 2>&1) || { echo "$out" >&2; cat "$work/serve.log" >&2; exit 1; }

token=$(grep -Eo '^tks_[0-9A-Za-z]{16}_[0-9A-Za-z]{49}$' <<<"$out" || true)
check "the session prints a plaintext token" test -n "$token"
check "whoami shows alice, an admin" grep -Eq '^[0-9A-Za-z]{16} +alice +human +true' <<<"$out"
check "the access token from token exchange is ci-bot's" grep -q '"username":"ci-bot"' <<<"$out"
check "REST and the CLI list the token" test "$(grep -Ec "\"id\":\"${token:4:16}\"|^${token:4:16} +CI pipeline" <<<"$out")" -eq 2
check "the deleted token's access token is refused" test "$(tail -n1 <<<"$out")" = 401
check "the login's token is kept private" test "$(stat -c %a "$XDG_CONFIG_HOME/tokenservice/credentials.json")" = 600

# The README's gRPC example, verbatim, after the session (alice is still logged in).
awk '/<!-- grpc:start -->/{on=1; next} /<!-- grpc:end -->/{on=0} on && /^```/{code=!code; next} on && code' README.md >"$work/grpc.sh"
grpc_out=$(bash -euo pipefail "$work/grpc.sh" 2>&1) || { echo "$grpc_out" >&2; exit 1; }
check "grpcurl lists the three services" test "$(grep -Ecx 'priv.tokenservice.v1alpha1.(Audit|Token|User)Service' <<<"$grpc_out")" -eq 3
check "the README's grpcurl call answers as alice" grep -q '"username": "alice"' <<<"$grpc_out"
created=$(bin/grpcurl -plaintext -d '{"username": "alice", "password": "correct horse battery staple"}' \
  localhost:9090 priv.tokenservice.v1alpha1.TokenService/CreateToken)
grpc_token=$(sed -n 's/.*"token": "\(tks_[^"]*\)".*/\1/p' <<<"$created")
check "grpcurl creates a token" test -n "$grpc_token"
got=$(bin/grpcurl -plaintext -H "authorization: Bearer $grpc_token" -d "{\"token_id\": \"${grpc_token:4:16}\"}" \
  localhost:9090 priv.tokenservice.v1alpha1.TokenService/GetToken)
check "grpcurl gets it with its own bearer" grep -q "\"id\": \"${grpc_token:4:16}\"" <<<"$got"

# Clients generated from the published documents by standard generators call
# every operation: go-swagger from OpenAPI 2, oapi-codegen from OpenAPI 3.
spec=openapi/priv/tokenservice/v1alpha1/tokenservice.swagger.json
check "go-swagger validates the OpenAPI 2 document" bin/swagger validate --quiet "$spec"
(cd scripts/generated-client && rm -rf client models && ../../bin/swagger generate client --quiet -f "../../$spec" -t . >/dev/null 2>&1)
check "the go-swagger client calls every operation" \
  bash -c 'cd scripts/generated-client && go run . localhost:8080 alice "correct horse battery staple"'
(cd scripts/oapi-client && rm -rf client && mkdir client && ../../bin/oapi-codegen -config oapi-codegen.yaml ../../openapi/priv/tokenservice/v1alpha1/tokenservice.openapi.json)
check "the oapi-codegen client calls every operation" \
  bash -c 'cd scripts/oapi-client && go run . localhost:8080 alice "correct horse battery staple"'

# A standard Node OAuth client, given the issuer URL, an API token's ID and
# the token: discovery, client credentials, a call, introspection, revocation.
oauth_token=$(curl -fsS -X POST localhost:8080/v1alpha1/tokens -H 'Content-Type: application/json' \
  -d '{"username": "alice", "password": "correct horse battery staple", "scopes": ["tokens:read", "introspect"]}' | sed -n 's/.*"token":"\(tks_[^"]*\)".*/\1/p')
check "the Node OAuth client (openid-client) gets and uses access tokens" \
  node scripts/oauth-client-node/check.mjs http://localhost:8080 "${oauth_token:4:16}" "$oauth_token"

echo "readme-session: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
