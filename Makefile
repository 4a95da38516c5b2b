# cxbridge: build, test and run locally.
#
#   make test                                  what CI runs: unit and integration tests
#   make build                                 every function for Lambda (linux/arm64) into .build/
#   make demo                                  walk through every seed scenario locally and check the outcomes
#   make chaos                                 the fault-injection proof: 1,000 escalations and WhatsApp conversations under
#                                              5xx, 429, hangs, killed processes, duplicates and a stalled DynamoDB; exits 1
#                                              on anything lost, doubled or answered late
#   CHAOS_ESCALATIONS=200 make chaos           the size CI runs (also CHAOS_PARALLEL, CHAOS_CONVERSATIONS, CHAOS_SEED to
#                                              replay a run's faults, CHAOS_REDRIVE_EVERY, CHAOS_PAUSE_DYNAMODB)
#   make run [PARAMS=<file>]                   the whole product on 127.0.0.1 (fakes for every external system)
#   make invoke FN=<function> EVENT=<file> [PARAMS=<file>]   run one event through a function's real bootstrap
#
# PARAMS names a JSON file of template parameter overrides ({"TierL1QueueId":"..."}) or of
# environment variables in the shape of sam local invoke --env-vars.
#   make lint                                  gofmt, go vet and golangci-lint
#   make fuzz [FUZZTIME=60s]                   every fuzz target in turn, FUZZTIME each (CI: 50000x, a count)
#
# `sam build` calls the build-<LogicalId> targets below (BuildMethod: makefile) with ARTIFACTS_DIR.

GO            ?= go
GOLANGCI_LINT := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
LAMBDA_BUILD   = GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags="-s -w" -o $(ARTIFACTS_DIR)/bootstrap

.PHONY: build test lint demo chaos run invoke fuzz

build:
	@set -e; for t in $$(sed -n 's/^build-\([A-Za-z0-9]*\):.*/\1/p' Makefile); do \
		mkdir -p .build/$$t; \
		$(MAKE) --no-print-directory build-$$t ARTIFACTS_DIR=$(CURDIR)/.build/$$t; \
		printf '%-32s %s bytes\n' $$t "$$(wc -c < .build/$$t/bootstrap)"; \
	done

build-TelemetryTierFunction:
	$(LAMBDA_BUILD) ./functions/telemetry-tier

build-MessagebirdInboundFunction:
	$(LAMBDA_BUILD) ./functions/messagebird-inbound

build-CreateEscalationFunction:
	$(LAMBDA_BUILD) ./functions/create-escalation

build-EscalationRedriveFunction:
	$(LAMBDA_BUILD) ./functions/escalation-redrive

build-ServicenowLookupFunction:
	$(LAMBDA_BUILD) ./functions/servicenow-lookup

build-PrioritySyncFunction:
	$(LAMBDA_BUILD) ./functions/priority-sync

build-IntegrationHealthFunction:
	$(LAMBDA_BUILD) ./functions/integration-health

test:
	$(GO) test -count=1 ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: the files above need formatting'; exit 1; }
	$(GO) vet ./...
	$(GO) run $(GOLANGCI_LINT) run --config .ci/golangci.yml ./...

# Every parser of outside input has a fuzz target (package:Target). `go test -fuzz` takes one
# target of one package per run, so they run in turn; a target missing from this list fails.
FUZZTIME     ?= 60s
FUZZ_TARGETS := \
	pkg/mask:FuzzEgress \
	pkg/apigw:FuzzLambda \
	pkg/connectors/messagebird:FuzzVerifyJWT \
	pkg/connectors/messagebird:FuzzParseEvent \
	pkg/connectors/jira:FuzzVerifySignature \
	pkg/connectors/jira:FuzzParseWebhook \
	pkg/connectors/jira:FuzzADF \
	pkg/connectors/jira/jiratest:FuzzQuote \
	pkg/hmacauth:FuzzVerify \
	pkg/connectors/servicenow:FuzzQueryValues \
	pkg/lookup:FuzzParse \
	pkg/dataaction:FuzzRender

fuzz:
	@for f in $$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' pkg cmd functions | sed 's/^func //' | sort -u); do \
		case " $(FUZZ_TARGETS) " in *":$$f "*) ;; *) echo "fuzz: $$f is not in FUZZ_TARGETS"; exit 1;; esac; \
	done
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $${t#*:} (./$${t%%:*}, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) ./$${t%%:*}; \
	done
# go run compiles cmd/local first, silently: a minute on a fresh machine, so say so.
COMPILING = @echo 'compiling the local stack (go run ./cmd/local; a minute the first time)...' >&2

demo:
	$(COMPILING)
	$(GO) run ./cmd/local demo

chaos:
	$(COMPILING)
	$(GO) run ./cmd/local chaos

run:
	$(COMPILING)
	$(GO) run ./cmd/local run $(if $(PARAMS),-params $(PARAMS))

invoke:
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo 'usage: make invoke FN=telemetry-tier EVENT=events/telemetry-tier/critical.json [PARAMS=overrides.json]'; exit 2; }
	$(COMPILING)
	$(GO) run ./cmd/local invoke $(if $(PARAMS),-params $(PARAMS)) $(FN) $(EVENT)
