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
#   make run                                   the whole product on 127.0.0.1 (fakes for every external system)
#   make invoke FN=<function> EVENT=<file>     run one event through a function's real bootstrap
#   make lint                                  gofmt, go vet and golangci-lint
#
# `sam build` calls the build-<LogicalId> targets below (BuildMethod: makefile) with ARTIFACTS_DIR.

GO            ?= go
GOLANGCI_LINT := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
LAMBDA_BUILD   = GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags="-s -w" -o $(ARTIFACTS_DIR)/bootstrap

.PHONY: build test lint demo chaos run invoke

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

test:
	$(GO) test -count=1 ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: the files above need formatting'; exit 1; }
	$(GO) vet ./...
	$(GO) run $(GOLANGCI_LINT) run --config .ci/golangci.yml ./...

demo:
	$(GO) run ./cmd/local demo

chaos:
	$(GO) run ./cmd/local chaos

run:
	$(GO) run ./cmd/local run

invoke:
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo 'usage: make invoke FN=telemetry-tier EVENT=events/telemetry-tier/critical.json'; exit 2; }
	$(GO) run ./cmd/local invoke $(FN) $(EVENT)
