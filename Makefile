# Sluice — build, demo, test, bench.
GO        ?= go
BIN       := bin/sluice
PKGS      := ./...
TEST_FLAGS ?= -timeout 25m

.PHONY: all build demo test unit integration deps vet fuzz bench soak clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/sluice

# The whole pipeline on this machine: embedded broker, generator, local
# warehouse. Stops after 200k events and prints how to look at the table.
demo: build
	./$(BIN) demo --dir ./sluice-demo --events 200000

# Installs what is missing, then runs every test. The integration tests
# build the sluice binary themselves, which Go's test cache cannot see: they
# always run.
test: deps vet
	$(GO) test $(TEST_FLAGS) $$($(GO) list $(PKGS) | grep -v /integration$$)
	$(GO) test -count=1 $(TEST_FLAGS) ./integration/

unit: vet
	$(GO) test -short $(TEST_FLAGS) $(PKGS)

deps:
	@scripts/install-deps.sh

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Short coverage-guided runs of every decoder fuzz target.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=60s ./ingest/parse/
	$(GO) test -run='^$$' -fuzz='^FuzzProtobuf$$' -fuzztime=60s ./ingest/parse/
	$(GO) test -run='^$$' -fuzz='^FuzzJSONMatch$$' -fuzztime=30s ./ingest/parse/
	$(GO) test -run='^$$' -fuzz='^FuzzProtoMatch$$' -fuzztime=30s ./ingest/parse/
	$(GO) test -run='^$$' -fuzz='^FuzzProtoEncode$$' -fuzztime=30s ./sinks/kafka/
	$(GO) test -run='^$$' -fuzz='^FuzzParseType$$' -fuzztime=30s ./ingest/schema/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodePositions$$' -fuzztime=30s ./ingest/checkpoint/
	$(GO) test -run='^$$' -fuzz='^FuzzDecoder$$' -fuzztime=30s ./ingest/registry/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeCanal$$' -fuzztime=30s ./cdc/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeDebezium$$' -fuzztime=30s ./cdc/

# One run: fetch, decode+encode, full pipeline, 10,000 partitions and the
# protobuf pipeline (sluice bench), then the protobuf decoder against
# dynamicpb on the same record.
bench: build
	./$(BIN) bench
	$(GO) test -run '^$$' -bench 'BenchmarkProtobufDecode' -benchtime 3s ./ingest/parse/

# The long crash loops.
soak:
	SLUICE_SOAK=1 $(GO) test -timeout 120m -run 'Crash|PartitionNotices' -v ./integration/

clean:
	rm -rf bin sluice-demo
