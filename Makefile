# airlock's entry points. Tools are pinned and run with `go run`, never assumed installed.
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.7.0

.PHONY: demo test test-short test-deploy plugins bench bench-check bench-screening bench-replicas lint fuzz check clean image install dist

# The version and commit stamped into the binary ('airlock version'): the nearest tag (or the
# commit) and the commit, "-dirty" when the tree has changes.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell test -z "$$(git status --porcelain 2>/dev/null)" || echo -dirty)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
DIST_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

## demo: the guided demo on embedded defaults (builds the Slack connector, starts a fake Slack)
demo:
	$(GO) run ./cmd/airlock demo

## test: every test, with the race detector (plugins are built by the tests themselves)
test:
	$(GO) test -race -count=1 -timeout 30m ./...
	cd deploy && $(GO) test -count=1 ./...

## test-short: the same without -race, for a quick loop
test-short:
	$(GO) test -count=1 ./...

## test-deploy: only the deployment files: the Helm chart against the Kubernetes API types,
## compose.yaml against the Compose schema, alert rules and dashboard with promtool (a module
## of its own; needs helm and promtool, see .ci/run); make test runs it too
test-deploy:
	cd deploy && $(GO) test -count=1 ./...

## install: the airlock binary, version and commit stamped, into $(go env GOBIN) or ~/go/bin
install:
	CGO_ENABLED=0 $(GO) install -trimpath -ldflags "$(LDFLAGS)" ./cmd/airlock

## dist: release archives build/dist/airlock-VERSION-OS-ARCH.tar.gz for linux and darwin on
## amd64 and arm64 (DIST_PLATFORMS), with build/dist/SHA256SUMS (check: sha256sum -c SHA256SUMS)
dist:
	rm -rf build/dist && mkdir -p build/dist
	set -e; for p in $(DIST_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; d=airlock-$(VERSION)-$$os-$$arch; \
	  mkdir -p build/dist/$$d; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o build/dist/$$d/airlock ./cmd/airlock; \
	  cp README.md build/dist/$$d/; \
	  tar -C build/dist -czf build/dist/$$d.tar.gz $$d; rm -rf build/dist/$$d; \
	done
	cd build/dist && sha256sum *.tar.gz > SHA256SUMS && cat SHA256SUMS

## image: the container image as build/airlock-image.tar (docker load -i …), without a daemon
image:
	$(GO) run ./internal/cmd/image --out build/airlock-image.tar

## plugins: build plugins/* into build/plugins with stamped manifests
plugins:
	$(GO) run ./cmd/airlock plugin build --out build/plugins

## bench: native vs airlock, side by side in one run, printed as a table with ratios
bench:
	$(GO) run ./internal/cmd/bench

## bench-check: the regression guard: the full path's ratio to the native call (rows 1 and 2,
## interleaved pairs) against internal/cmd/bench/baseline.json; fails past +15%
bench-check:
	$(GO) run ./internal/cmd/bench -check internal/cmd/bench/baseline.json

## bench-screening: the prompt-injection detectors on their labelled corpus (precision, recall,
## false-positive rate, by encoding and language) and their cost per result (BenchmarkScan)
bench-screening:
	$(GO) test -count=1 -run '^TestCorpus$$' -bench '^BenchmarkScan$$' -benchtime 2s -v ./host/internal/screen | grep -vE '^=== RUN|missed:'

## bench-replicas: three airlock serve processes on one PostgreSQL and Redis (.ci/services):
## revoke propagation p50/p99 and late calls (TestReplicas)
bench-replicas:
	AIRLOCK_BENCH_REPLICAS=1 $(GO) test -count=1 -run '^TestReplicas$$' -v ./cmd/airlock | grep -E '^(replicas:|--- |ok|FAIL)|replicas_test.go'

## lint: formatting, vet, staticcheck, go mod tidy, no tracked binaries
lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo "run gofmt -w ." && exit 1)
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./pdk/... ./plugins/...
	$(GO) run $(STATICCHECK) ./...
	$(GO) mod tidy -diff
	$(GO) test -count=1 -run 'TestNoTrackedBinaries|TestModuleIsTidy' ./internal/meta

## fuzz: each fuzz target for 30 s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./host/manifest
	$(GO) test -run '^$$' -fuzz FuzzCheckURL -fuzztime 30s ./host/internal/egress
	$(GO) test -run '^$$' -fuzz FuzzCompile -fuzztime 30s ./host/internal/validate
	$(GO) test -run '^$$' -fuzz FuzzDecodeJSONMatchesReference -fuzztime 30s ./host/internal/validate
	$(GO) test -run '^$$' -fuzz FuzzInstrument -fuzztime 30s ./host/internal/meter
	$(GO) test -run '^$$' -fuzz FuzzDecodeHTTPResponse -fuzztime 30s ./internal/abi
	$(GO) test -run '^$$' -fuzz FuzzDecoder -fuzztime 30s ./pdk/pdkjson
	$(GO) test -run '^$$' -fuzz FuzzWriter -fuzztime 30s ./pdk/pdkjson
	$(GO) test -run '^$$' -fuzz FuzzAnswer -fuzztime 30s ./plugins/slack
	$(GO) test -run '^$$' -fuzz FuzzBuildPath -fuzztime 30s ./internal/openapiop
	$(GO) test -run '^$$' -fuzz FuzzLabel -fuzztime 30s ./host
	$(GO) test -run '^$$' -fuzz FuzzScan -fuzztime 30s ./host/internal/screen

## check: what CI runs
check: lint test

clean:
	rm -rf build .airlock
