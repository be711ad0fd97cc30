# pier — the two commands of the README: `make demo` and `make test`.
GO      ?= $(shell command -v go || echo /usr/local/go/bin/go)
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: demo build test test-deps unit e2e vet fuzz bench clean

demo:
	./scripts/demo.sh

build:
	$(GO) build -o bin/pier ./cmd/pier

test: test-deps vet unit e2e

test-deps:
	./scripts/test-deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 15m ./internal/... ./cmd/...

e2e:
	$(GO) test -count=1 -timeout 30m ./test/...

# Short fuzzing runs of every parser (go test -fuzz runs one target at a time).
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzParse$$ -fuzztime=30s ./internal/manifest
	$(GO) test -run='^$$' -fuzz=FuzzParseProcfile -fuzztime=30s ./internal/manifest
	$(GO) test -run='^$$' -fuzz=FuzzParseSize -fuzztime=10s ./internal/cli
	$(GO) test -run='^$$' -fuzz=FuzzUnpack -fuzztime=30s ./internal/bundle
	$(GO) test -run='^$$' -fuzz=FuzzStaticPath -fuzztime=30s ./internal/gateway
	$(GO) test -run='^$$' -fuzz=FuzzFrontParse -fuzztime=30s ./internal/gateway
	$(GO) test -run='^$$' -fuzz=FuzzParseResponseHead -fuzztime=30s ./internal/gateway
	$(GO) test -run='^$$' -fuzz=FuzzDirectSame -fuzztime=30s ./internal/gateway
	$(GO) test -run='^$$' -fuzz=FuzzPassKey -fuzztime=10s ./internal/httpcache
	$(GO) test -run='^$$' -fuzz=FuzzHitFields -fuzztime=10s ./internal/gateway
	$(GO) test -run='^$$' -fuzz=FuzzHitKey -fuzztime=10s ./internal/httpcache
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=30s ./internal/tasks/beanstalk
	$(GO) test -run='^$$' -fuzz=FuzzJournalRecord -fuzztime=10s ./internal/tasks
	$(GO) test -run='^$$' -fuzz=FuzzSnapshot -fuzztime=10s ./internal/tasks
	$(GO) test -run='^$$' -fuzz=FuzzCountsValue -fuzztime=10s ./internal/tasks
	$(GO) test -run='^$$' -fuzz=FuzzAckSeq -fuzztime=10s ./internal/store
	$(GO) test -run='^$$' -fuzz=FuzzParseEnvelope -fuzztime=30s ./internal/errortrack
	$(GO) test -run='^$$' -fuzz=FuzzParseCursor -fuzztime=10s ./internal/errortrack
	$(GO) test -run='^$$' -fuzz=FuzzParsePacket -fuzztime=30s ./internal/metrics
	$(GO) test -run='^$$' -fuzz=FuzzSyslogFormat -fuzztime=10s ./internal/logs
	$(GO) test -run='^$$' -fuzz=FuzzQueryString -fuzztime=30s ./internal/search
	$(GO) test -run='^$$' -fuzz=FuzzSearchBody -fuzztime=30s ./internal/search
	$(GO) test -run='^$$' -fuzz=FuzzSimpleQueryString -fuzztime=10s ./internal/search
	$(GO) test -run='^$$' -fuzz=FuzzTranslogDecode -fuzztime=10s ./internal/search
	$(GO) test -run='^$$' -fuzz=FuzzOverlaps -fuzztime=10s ./internal/deploy

bench:
	./bench/run.sh

clean:
	rm -rf bin
