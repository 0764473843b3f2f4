# mxedge build and test entry points. `make test` is what CI runs.
GO      ?= go
BIN     := bin/mxedge
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

export MXEDGE_REQUIRE_COMPONENTS ?= 1

.PHONY: all build test unit e2e bench bench-smoke vet fmt clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mxedge

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

# unit + integration tests (real redis-server, pebble, promtool... required), then end-to-end.
test: vet unit e2e bench-smoke

unit:
	$(GO) test -race -count=1 ./...

e2e: build
	$(MAKE) -C e2e test

bench:
	$(MAKE) -C bench all

bench-smoke:
	$(MAKE) -C bench smoke MXEDGE=require

clean:
	rm -rf bin
