# tokenservice: `make run` starts the service on the embedded SQLite default;
# `make test` runs every test. `make help` lists the rest.

SHELL := /bin/bash
.DEFAULT_GOAL := help

BIN   := $(CURDIR)/bin
GO    ?= go
export GOBIN := $(BIN)

# Pinned generators and tools, installed into bin/ from the Go module proxy.
BUF_VERSION          := v1.75.0
PROTOC_GEN_GO        := v1.36.12
PROTOC_GEN_GO_GRPC   := v1.6.2
GRPC_GATEWAY_VERSION := v2.33.0
GRPCURL_VERSION      := v1.9.4
GO_SWAGGER_VERSION   := v0.36.7
OAPI_CODEGEN_VERSION := v2.8.2
PROTOC_GEN_DOC       := v1.5.1
HEY_VERSION          := v0.1.4
STATICCHECK_VERSION  := v0.8.2
# The gateways the gateway tests run (issue 23), built from their Go modules.
CADDY_VERSION        := v2.11.9
OAUTH2_PROXY_VERSION := v7.15.6

# One stamp per tool and version: bumping a pin reinstalls just that tool.
TOOLS := \
  github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION) \
  google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO) \
  google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC) \
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION) \
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION) \
  github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION) \
  github.com/go-swagger/go-swagger/cmd/swagger@$(GO_SWAGGER_VERSION) \
  github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@$(OAPI_CODEGEN_VERSION) \
  github.com/pseudomuto/protoc-gen-doc/cmd/protoc-gen-doc@$(PROTOC_GEN_DOC) \
  github.com/rakyll/hey@$(HEY_VERSION) \
  honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
stamp = $(BIN)/.stamps/$(subst /,_,$(1))
TOOL_STAMPS := $(foreach t,$(TOOLS),$(call stamp,$(t)))
$(foreach t,$(TOOLS),$(eval $(call stamp,$(t)): ; $(GO) install $(t) && mkdir -p $(BIN)/.stamps && touch $$@))
GRPCURL := $(call stamp,github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION))
SWAGGER := $(call stamp,github.com/go-swagger/go-swagger/cmd/swagger@$(GO_SWAGGER_VERSION))
OAPI_CODEGEN := $(call stamp,github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@$(OAPI_CODEGEN_VERSION))
BUF := $(call stamp,github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION))
HEY := $(call stamp,github.com/rakyll/hey@$(HEY_VERSION))
STATICCHECK := $(call stamp,honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION))
GATEWAYS := \
  github.com/caddyserver/caddy/v2/cmd/caddy@$(CADDY_VERSION) \
  github.com/oauth2-proxy/oauth2-proxy/v7@$(OAUTH2_PROXY_VERSION)
$(foreach t,$(GATEWAYS),$(eval $(call stamp,$(t)): ; $(GO) install $(t) && mkdir -p $(BIN)/.stamps && touch $$@))
GATEWAY_STAMPS := $(foreach t,$(GATEWAYS),$(call stamp,$(t)))

# The MySQL database the tests use; CI sets the same. Tests fail (never skip)
# when it cannot be reached.
TOKENSERVICE_TEST_MYSQL_DSN ?= root@tcp(127.0.0.1:3306)/test
export TOKENSERVICE_TEST_MYSQL_DSN

.PHONY: help
help: ## Show this help.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

.PHONY: run
run: build ## Run the service on the embedded SQLite default (./tokenservice.db).
	$(BIN)/tokenservice serve

.PHONY: build
build: ## Build bin/tokenservice.
	$(GO) build -o $(BIN)/tokenservice ./cmd/tokenservice

.PHONY: test
# The browser test drives Debian's Chromium (never a downloaded one).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
.PHONY: chromium
chromium: ## Install Debian's Chromium for the Swagger UI browser test, unless it is there.
	@command -v chromium >/dev/null || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium; }

# The gateway tests (issue 23) run Debian's nginx, as Chromium is Debian's.
.PHONY: nginx
nginx: ## Install Debian's nginx for the gateway tests, unless it is there.
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends nginx; }

# The Node OAuth client the README session runs, from the npm registry, as
# package-lock.json pins it.
NODE_OAUTH_CLIENT := scripts/oauth-client-node/node_modules/.package-lock.json
$(NODE_OAUTH_CLIENT): scripts/oauth-client-node/package-lock.json
	cd scripts/oauth-client-node && npm ci --no-audit --no-fund
# axe-core, the accessibility engine the console's browser test runs, pinned
# by its lockfile.
AXE := scripts/axe/node_modules/.package-lock.json
$(AXE): scripts/axe/package-lock.json
	cd scripts/axe && npm ci --no-audit --no-fund

# The Galera cluster in the tests (issue 19): Debian's MariaDB, Galera and
# HAProxy, three nodes and a balancer on ports of their own (scripts/galera.sh).
.PHONY: galera-packages
galera-packages: ## Install Debian's haproxy, galera-4, rsync and mariadb-server for the Galera cluster, unless they are there.
	@missing=; command -v haproxy >/dev/null || missing="$$missing haproxy"; \
	  [ -r /usr/lib/galera/libgalera_smm.so ] || missing="$$missing galera-4"; \
	  command -v rsync >/dev/null || missing="$$missing rsync"; \
	  command -v mariadbd >/dev/null || missing="$$missing mariadb-server"; \
	  [ -z "$$missing" ] || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; } >&2

.PHONY: galera-up
galera-up: galera-packages ## Start the three-node Galera cluster and HAProxy (bin/galera), wait until Synced, print the DSNs to export.
	@scripts/galera.sh up

.PHONY: galera-down
galera-down: ## Stop the Galera cluster and HAProxy.
	@scripts/galera.sh down

# The Galera cluster runs for the whole Go test run (any package's Galera
# tests use it) and is stopped however the run ends; a cluster that cannot
# start fails make test. The failover tests' own cluster (bin/galera-failover)
# is stopped too, in case a test run was killed before its cleanup.
test: $(GRPCURL) $(SWAGGER) $(OAPI_CODEGEN) $(NODE_OAUTH_CLIENT) $(AXE) chromium nginx $(GATEWAY_STAMPS) galera-packages build ## Run unit and integration tests (SQLite, MySQL and a Galera cluster, HTTP and gRPC) with -race, the deploy/ tests, then the README session.
	@trap 'scripts/galera.sh down; GALERA_DIR=$(CURDIR)/bin/galera-failover GALERA_PORT_BASE=13400 scripts/galera.sh down' EXIT; \
	  galera=$$(scripts/galera.sh up) || { echo "make test: the Galera cluster did not start"; exit 1; }; \
	  eval "$$galera"; echo "$$galera"; \
	  echo $(GO) test -race -count=1 -timeout 30m ./...; $(GO) test -race -count=1 -timeout 30m ./...
	cd deploy && $(GO) test -count=1 ./... # Compose, kustomize and monitoring files: a module of their own
	scripts/readme-session.sh

.PHONY: test-fast
test-fast: ## The quick loop: every test that needs no MySQL and starts no server process, with -short (make test runs everything).
	TOKENSERVICE_TEST_WITHOUT_MYSQL=1 $(GO) test -short ./...

.PHONY: idp
idp: ## Run an OpenID Provider for trying the console's single sign-on (zitadel/oidc's example OP) at http://localhost:9998; for trying only.
	$(GO) run ./scripts/dev-idp

.PHONY: screenshots
screenshots: chromium $(AXE) ## Remake the console's pictures in docs/console/ from its browser tests (TestConsoleInABrowser, TestLoginWithSSO).
	mkdir -p docs/console
	TOKENSERVICE_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run 'TestConsoleInABrowser$$|TestLoginWithSSO$$' ./cmd/tokenservice

FUZZTIME ?= 30s
.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 30s); their seed corpora run in `make test`.
	$(GO) test -run '^$$' -fuzz '^FuzzParseAPIToken$$' -fuzztime $(FUZZTIME) ./pkg/auth
	$(GO) test -run '^$$' -fuzz '^FuzzPageTokenDecode$$' -fuzztime $(FUZZTIME) ./pkg/pagetoken
	$(GO) test -run '^$$' -fuzz '^FuzzAuthenticateBearer$$' -fuzztime $(FUZZTIME) ./pkg/tokens
	$(GO) test -run '^$$' -fuzz '^FuzzRESTRequest$$' -fuzztime $(FUZZTIME) ./pkg/app
	$(GO) test -run '^$$' -fuzz '^FuzzTokenExchange$$' -fuzztime $(FUZZTIME) ./pkg/app
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./pkg/issuers
	$(GO) test -run '^$$' -fuzz '^FuzzDecodes$$' -fuzztime $(FUZZTIME) ./pkg/server
	$(GO) test -run '^$$' -fuzz '^FuzzForwardAuth$$' -fuzztime $(FUZZTIME) ./pkg/forwardauth

.PHONY: bench
# tokenbench's knobs: make bench BENCH_DB=sqlite BENCH_DURATION=10s BENCH_CONCURRENCY=64
# BENCH_GALERA= (empty) leaves the Galera cluster out; it is only compared
# with MySQL. The fleet scenarios (issue 22) seed BENCH_FLEET_ROWS token
# rows, BENCH_FLEET_TOKENS of them picked at random per request: make bench
# BENCH_FLEET_ROWS=1000000 for a million.
BENCH_DB          ?= mysql
BENCH_DURATION    ?= 5s
BENCH_CONCURRENCY ?= 16
BENCH_FLEET_ROWS  ?= 100000
BENCH_FLEET_TOKENS ?= 40000
BENCH_GALERA      ?= $(if $(filter mysql,$(BENCH_DB)),1)
export TOKENSERVICE_BENCH_MYSQL_DSN ?= root@tcp(127.0.0.1:3306)/test

# With MySQL, the scenarios run on the Galera cluster too, through HAProxy
# (issue 19): the cluster is started if no part of it runs, and then
# stopped at the end however the run ends; one a developer has up is left up.
bench: build $(HEY) nginx $(GATEWAY_STAMPS) $(if $(BENCH_GALERA),galera-packages) ## Load-test a real server (cmd/tokenbench, MySQL by default, and then a Galera cluster; hey checks the ceiling), then run the Go benchmarks.
	@galera=; \
	  if [ -n "$(BENCH_GALERA)" ]; then \
	    scripts/galera.sh status | grep -q running || trap 'scripts/galera.sh down' EXIT; \
	    dsns=$$(scripts/galera.sh up) || { echo "make bench: the Galera cluster did not start"; exit 1; }; \
	    eval "$$dsns"; galera=$$TOKENSERVICE_TEST_GALERA_LB_DSN; \
	  fi; \
	  set -x; $(GO) run ./cmd/tokenbench -bin $(BIN)/tokenservice -db $(BENCH_DB) -duration $(BENCH_DURATION) -concurrency $(BENCH_CONCURRENCY) -fleet-rows $(BENCH_FLEET_ROWS) -fleet-tokens $(BENCH_FLEET_TOKENS) -hey $(BIN)/hey -oauth2-proxy $(BIN)/oauth2-proxy -galera-dsn "$$galera"
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: lint
lint: $(BUF) $(STATICCHECK) ## buf lint, go vet, staticcheck and gofmt.
	$(BIN)/buf lint
	$(GO) vet ./...
	$(BIN)/staticcheck ./...
	cd deploy && $(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

.PHONY: generate
SPEC_V2 := openapi/priv/tokenservice/v1alpha1/tokenservice.swagger.json
SPEC_V3 := openapi/priv/tokenservice/v1alpha1/tokenservice.openapi.json

generate: tools ## Regenerate gen/, openapi/ (OpenAPI 2, then 3 from it), docs/api.md and the README's API tables from proto/.
	rm -rf gen openapi docs/api.md $(BIN)/openapiv2
	PATH="$(BIN):$$PATH" $(BIN)/buf generate
	$(GO) run ./tools/openapiv3 $(BIN)/openapiv2 priv/tokenservice/v1alpha1/api.swagger.json $(SPEC_V2) $(SPEC_V3) proto/priv/tokenservice/v1alpha1/oauth2.openapi.yaml
	$(GO) run ./tools/apitable README.md

.PHONY: check-generate
check-generate: generate ## Fail if gen/, openapi/, docs/api.md or the README's tables differ from what `make generate` makes.
	@git add -N gen openapi docs/api.md >/dev/null 2>&1 || true
	@if ! git diff --quiet -- gen openapi docs/api.md README.md; then git diff --stat -- gen openapi docs/api.md README.md; echo "gen/, openapi/, docs/api.md or the README's tables are stale: run make generate and commit"; exit 1; fi

.PHONY: tools
tools: $(TOOL_STAMPS) ## Install the pinned tools into bin/.

.PHONY: gateways
gateways: nginx $(GATEWAY_STAMPS) ## Install the gateways the gateway tests run: Debian's nginx, Caddy and oauth2-proxy (pinned, from their Go modules) into bin/.

.PHONY: grpcurl
grpcurl: $(GRPCURL) ## Install just the pinned grpcurl into bin/ (the quick start's gRPC calls need it).


.PHONY: clean
clean: ## Remove bin/ and the default SQLite database.
	rm -rf $(BIN) tokenservice.db tokenservice.db-*
