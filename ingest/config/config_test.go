package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/ingest/schema"
)

var update = flag.Bool("update", false, "rewrite testdata/*.bad.yaml.err with the messages the current code produces")

// load loads a file from testdata and fails the test if it does not load.
func load(t *testing.T, name string) *Pipeline {
	t.Helper()
	p, err := Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	return p
}

// unsetenv unsets an environment variable for the duration of the test.
func unsetenv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // restores the old value, if any, at cleanup
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

func TestConfigGood(t *testing.T) {
	// The value holds characters that YAML would otherwise read as a comment
	// and a mapping; it must arrive verbatim.
	const password = `s3cr3t #1: "x"`
	t.Setenv("SLUICE_TEST_KAFKA_PASSWORD", password)
	p := load(t, "good.yaml")

	orders, clicks := p.Streams[0], p.Streams[1]
	for _, c := range []struct {
		key       string
		got, want any
	}{
		{"name", p.Name, "shop-prod"},
		{"kafka.brokers", p.Kafka.Brokers, []string{"kafka-1.internal:9093", "kafka-2.internal:9093"}},
		{"kafka.client_id", p.Kafka.ClientID, "sluice-shop"},
		{"kafka.group_prefix", p.Kafka.GroupPrefix, "ingest."},
		{"kafka.start_offset", p.Kafka.StartOffset, "latest"},
		{"kafka.fetch_max_bytes", p.Kafka.FetchMaxBytes, ByteSize(16 << 20)},
		{"kafka.sasl", p.Kafka.SASL, SASL{Mechanism: "scram-sha-512", Username: "sluice", Password: password}},
		{"kafka.tls", p.Kafka.TLS, TLS{Enabled: true, CAFile: "/etc/sluice/ca.pem", CertFile: "/etc/sluice/client.pem",
			KeyFile: "/etc/sluice/client-key.pem", ServerName: "kafka.internal"}},
		{"catalog", p.Catalog, Catalog{Type: "sql", URI: "postgres://sluice:secret@catalog-db.internal:5432/iceberg?sslmode=require",
			Warehouse: "s3://shop-lake/warehouse", Name: "shop"}},
		{"checkpoint.interval", p.Checkpoint.Interval.D(), 30 * time.Second},
		{"checkpoint.commit_failure_timeout", p.Checkpoint.CommitFailureTimeout.D(), 15 * time.Minute},
		{"checkpoint.shutdown_timeout", p.Checkpoint.ShutdownTimeout.D(), 45 * time.Second},
		{"writer", p.Writer, Writer{TargetFileSize: 128 << 20, RowGroupSize: 8 << 20, Compression: "snappy", Workers: 12, MaxOpenFiles: 32}},
		{"dead_letter", p.DeadLetter, DeadLetter{Topic: "shop.dead-letters", MaxValueBytes: 256 << 10}},
		{"memory_budget", p.MemoryBudget, ByteSize(2 << 30)},
		{"len(streams)", len(p.Streams), 2},

		{"streams[0].name", orders.Name, "orders"},
		{"streams[0].topics", orders.Topics, []string{"shop.orders", "shop.orders-replay"}},
		{"streams[0].format", orders.Format, "json"},
		{"streams[0].max_record_bytes", orders.MaxRecordBytes, ByteSize(512 << 10)},
		{"streams[0].event_time", orders.EventTime, "placed_at"},
		{"len(streams[0].columns)", len(orders.Columns), 15},
		{"streams[0].columns[0]", orders.Columns[0], Column{Name: "order_id", Type: "string", Required: true}},
		{"streams[0].columns[5]", orders.Columns[5], Column{Name: "total", Type: "decimal(12,2)"}},
		{"streams[0].columns[13].type", orders.Columns[13].Type, "struct<street:string,city:string,zip:string,geo:struct<lat:float64,lon:float64>>"},
		{"streams[0].etl.filter", orders.ETL.Filter, `status != "test" && total >= 0`},
		{"len(streams[0].etl.columns)", len(orders.ETL.Columns), 3},
		{"streams[0].etl.columns[1].type", orders.ETL.Columns[1].Type, "int64"},
		{"streams[0].etl.rename", orders.ETL.Rename, map[string]string{"gift": "is_gift"}},
		{"streams[0].etl.drop", orders.ETL.Drop, []string{"internal_note"}},
		{"streams[0].table.name", orders.Table.Name, "shop.orders"},
		{"streams[0].table.partition", orders.Table.Partition, []string{"day(placed_at)", "bucket(16, customer_id)", "identity(status_lc)"}},
		{"streams[0].table.properties", orders.Table.Properties, map[string]string{
			"write.metadata.delete-after-commit.enabled": "true", "owner": "data-platform"}},

		{"streams[1].topics", clicks.Topics, []string(nil)},
		{"streams[1].topic_regex", clicks.TopicRegex, `^shop\.clicks\.[a-z]+$`},
		{"streams[1].format (default)", clicks.Format, "json"},
		{"streams[1].max_record_bytes (default)", clicks.MaxRecordBytes, ByteSize(DefaultMaxRecordBytes)},
		{"streams[1].etl", clicks.ETL.IsZero(), true},
		{"streams[1].table.partition", clicks.Table.Partition, []string{"hour(ts)", "country"}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.key, c.got, c.want)
		}
	}

	// Every column type parses to what was written.
	in, err := orders.InputSchema()
	if err != nil {
		t.Fatalf("streams[0] InputSchema: %v", err)
	}
	kinds := map[string]schema.Kind{}
	for _, f := range in.Fields {
		kinds[f.Name] = f.Type.Kind
	}
	for name, want := range map[string]schema.Kind{
		"order_id": schema.KindString, "customer_id": schema.KindInt64, "placed_at": schema.KindTimestampTZ,
		"item_count": schema.KindInt32, "total": schema.KindDecimal, "discount_rate": schema.KindFloat32,
		"weight_kg": schema.KindFloat64, "gift": schema.KindBool, "ship_by": schema.KindDate,
		"local_placed_at": schema.KindTimestamp, "signature": schema.KindBinary, "tags": schema.KindList,
		"address": schema.KindStruct,
	} {
		if kinds[name] != want {
			t.Errorf("streams[0] column %s has kind %v, want %v", name, kinds[name], want)
		}
	}
	if f, _ := in.Field("placed_at"); f.Type.Unit != schema.Micros {
		t.Errorf("placed_at unit = %v, want microseconds", f.Type.Unit)
	}
}

func TestConfigDefaults(t *testing.T) {
	p := load(t, "minimal.yaml")
	s := p.Streams[0]
	for _, c := range []struct {
		key       string
		got, want any
	}{
		{"memory_budget", p.MemoryBudget, ByteSize(DefaultMemoryBudget)},
		{"kafka.client_id", p.Kafka.ClientID, "sluice"},
		{"kafka.group_prefix", p.Kafka.GroupPrefix, "sluice."},
		{"kafka.start_offset", p.Kafka.StartOffset, "earliest"},
		{"kafka.fetch_max_bytes", p.Kafka.FetchMaxBytes, ByteSize(DefaultMemoryBudget / 32)},
		{"kafka.sasl", p.Kafka.SASL, SASL{}},
		{"kafka.tls", p.Kafka.TLS, TLS{}},
		{"catalog.type", p.Catalog.Type, "sql"},
		{"catalog.name", p.Catalog.Name, "sluice"},
		{"checkpoint.interval", p.Checkpoint.Interval.D(), DefaultCheckpointInterval},
		{"checkpoint.commit_failure_timeout", p.Checkpoint.CommitFailureTimeout.D(), DefaultCommitFailureTimeout},
		{"checkpoint.shutdown_timeout", p.Checkpoint.ShutdownTimeout.D(), DefaultShutdownTimeout},
		{"writer.target_file_size", p.Writer.TargetFileSize, ByteSize(DefaultTargetFileSize)},
		{"writer.row_group_size", p.Writer.RowGroupSize, ByteSize(DefaultRowGroupSize)},
		{"writer.compression", p.Writer.Compression, "zstd"},
		{"writer.workers", p.Writer.Workers, runtime.GOMAXPROCS(0)},
		{"writer.max_open_files", p.Writer.MaxOpenFiles, DefaultMaxOpenFiles},
		{"dead_letter.max_value_bytes", p.DeadLetter.MaxValueBytes, ByteSize(1 << 20)},
		{"streams[0].format", s.Format, "json"},
		{"streams[0].max_record_bytes", s.MaxRecordBytes, ByteSize(DefaultMaxRecordBytes)},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.key, c.got, c.want)
		}
	}
}

// TestConfigDefaultsDependOnValues covers defaults derived from other keys and
// zero values that mean "the default".
func TestConfigDefaultsDependOnValues(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		extra string // appended to minimal.yaml as top-level keys
		check func(*Pipeline) (got, want any)
	}{
		{"fetch_max_bytes is a thirty-second of a small memory budget", "memory_budget: 64MiB\n",
			func(p *Pipeline) (any, any) { return p.Kafka.FetchMaxBytes, ByteSize(2 << 20) }},
		{"fetch_max_bytes is capped with a large memory budget", "memory_budget: 8GiB\n",
			func(p *Pipeline) (any, any) { return p.Kafka.FetchMaxBytes, ByteSize(DefaultFetchMaxBytes) }},
		{"workers 0 means one per CPU", "writer:\n  workers: 0\n",
			func(p *Pipeline) (any, any) { return p.Writer.Workers, runtime.GOMAXPROCS(0) }},
		{"interval 0s means the default", "checkpoint:\n  interval: 0s\n",
			func(p *Pipeline) (any, any) { return p.Checkpoint.Interval.D(), DefaultCheckpointInterval }},
		{"explicit interval keeps the default failure timeout", "checkpoint:\n  interval: 2m\n",
			func(p *Pipeline) (any, any) {
				return p.Checkpoint.CommitFailureTimeout.D(), DefaultCommitFailureTimeout
			}},
		{"decimal byte units", "memory_budget: 1GB\n",
			func(p *Pipeline) (any, any) { return p.MemoryBudget, ByteSize(1e9) }},
		{"an empty duration means the default", "checkpoint:\n  interval:\n",
			func(p *Pipeline) (any, any) { return p.Checkpoint.Interval.D(), DefaultCheckpointInterval }},
		{"plain byte count", "memory_budget: 134217728\n",
			func(p *Pipeline) (any, any) { return p.MemoryBudget, ByteSize(128 << 20) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(append(slices.Clip(base), tc.extra...))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got, want := tc.check(p); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

// TestConfigYAMLFeatures checks that ordinary YAML keeps working under strict
// decoding and ${ENV} expansion: anchors and aliases, quoting, references in
// the middle of a value or in a number, and ${...} inside comments.
func TestConfigYAMLFeatures(t *testing.T) {
	t.Setenv("SLUICE_TEST_HOST", "kafka-1")
	t.Setenv("SLUICE_TEST_WORKERS", "3")
	unsetenv(t, "SLUICE_TEST_NOT_SET_ANYWHERE")
	const doc = `
name: shop
kafka:
  brokers: ["${SLUICE_TEST_HOST}:9092"]
catalog:
  uri: /var/lib/sluice/catalog.db   # ${SLUICE_TEST_NOT_SET_ANYWHERE} in a comment is not expanded
  warehouse: file:///var/lib/sluice/warehouse
writer:
  workers: ${SLUICE_TEST_WORKERS}
dead_letter: {file: /tmp/dl.jsonl}
streams:
  - name: a
    topics: [a]
    event_time: ts
    columns: &columns
      - {name: ts, type: timestamptz(ms), required: true}
      - {name: user, type: string}
    etl: &etl
      filter: user != "bot"
    table: {name: shop.a}
  - name: b
    topics: [b]
    event_time: ts
    columns: *columns
    etl: *etl
    table: {name: shop.b}
`
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := p.Kafka.Brokers, []string{"kafka-1:9092"}; !slices.Equal(got, want) {
		t.Errorf("kafka.brokers = %q, want %q", got, want)
	}
	if got := p.Writer.Workers; got != 3 {
		t.Errorf("writer.workers = %d, want 3 from the environment", got)
	}
	if got := p.Streams[1].ETL.Filter; got != `user != "bot"` {
		t.Errorf("streams[1].etl.filter = %q, want the aliased filter", got)
	}
	if got := len(p.Streams[1].Columns); got != 2 {
		t.Errorf("streams[1] has %d columns, want the 2 aliased ones", got)
	}
}

// TestConfigWrongValueType checks that a value of the wrong shape or type is
// reported with its key path and line, not only the line the YAML decoder
// knows.
func TestConfigWrongValueType(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		old, new string // replaced in minimal.yaml
		want     string
	}{
		{"streams:", "writer:\n  workers: many\nstreams:", "writer.workers: cannot unmarshal !!str `many` into int (line 11)"},
		{"streams:", "writer:\n  workers: [1]\nstreams:", "writer.workers: cannot unmarshal !!seq into int (line 11)"},
		{"streams:", "checkpoint:\n  interval: {minutes: 1}\nstreams:", "checkpoint.interval: want a duration like 1m or 30s"},
		{"streams:", "checkpoint:\n  interval: [1m]\nstreams:", "checkpoint.interval: want a duration like 1m or 30s"},
		{"streams:", "memory_budget: [1GiB]\nstreams:", "memory_budget: want a size like 512MiB"},
		{"streams:", "checkpoint: 1m\nstreams:", "checkpoint: want a mapping (line 10)"},
		{"dead_letter:\n  file: /var/lib/sluice/dead-letters.jsonl", "dead_letter: [a, b]", "dead_letter: want a mapping (line 8)"},
		{"brokers: [localhost:9092]", "brokers: localhost:9092", "kafka.brokers: want a list (line 4)"},
		{"brokers: [localhost:9092]", "brokers: [localhost:9092]\n  tls:\n    enabled: maybe",
			"kafka.tls.enabled: cannot unmarshal !!str `maybe` into bool (line 6)"},
		{"name: shop", "name: {first: shop}", "name: cannot unmarshal !!map into string (line 2)"},
		{"      partition: [day(placed_at)]", "      properties: [a=b]", "streams[0].table.properties: want a mapping (line 21)"},
	} {
		t.Run(tc.new, func(t *testing.T) {
			doc := strings.Replace(string(base), tc.old, tc.new, 1)
			_, err := Parse([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse:\n%s\n= %v\nwant an error containing %q", doc, err, tc.want)
			}
		})
	}
}

// badConfigs names, for every testdata/*.bad.yaml, the key paths (or, where a
// file has no key path to blame, the words) its error must contain. The full
// message is compared with testdata/NAME.bad.yaml.err; this table keeps a
// careless -update from accepting a message that lost its path.
var badConfigs = map[string][]string{
	"unknown_top_level_key": {"metrics_addr: unknown key (line 22)"},
	"unknown_stream_key":    {"streams[0].colums: unknown key (line 14)"},
	"unknown_column_key":    {"streams[0].columns[2].nullable: unknown key"},
	"unknown_etl_key":       {"streams[0].etl.where: unknown key"},
	"many_unknown_keys":     {"kafka.sasl.user:", "streams[0].colums:", "streams[0].etl.columns[0].expression:", "streams[0].table.partitions:", "retention:"},
	"missing_name":          {"name: required"},
	"changes": {`streams[0].source_table: "users"`, "streams[0].compression:", "streams[0].table.primary_key[0]: column \"id\" must be required",
		"streams[0].table.primary_key[1]:", `streams[0].table.primary_key[2]: no column "nope"`, "streams[0].table.partition:", "streams[0].etl:",
		"streams[1].source_table: only with format", "streams[1].table.primary_key: only with format"},
	"cdc": {"cdc[0].host: required", "cdc[0].port: 70000", "cdc[0].user: required", `cdc[0].flavor: "oracle"`, "cdc[0].server_id: required",
		`cdc[0].tables[0]: "nodot"`, `cdc[0].tables[1]: "a.[b"`, `cdc[0].namespace: "bad name"`, "cdc[0].snapshot.chunk_rows: -1", `cdc[1].name: "shop" is used`},
	"hive": {`hdfs.namenodes[0]: "nn1"`, `hdfs.data_transfer_protection: "secret"`, "hdfs.block_size:", "hdfs.kerberos.principal:",
		`streams[0].table.location: "s3://bucket/events"`, "streams[0].table.compaction: not supported", "streams[0].table.properties:",
		"streams[0].late.policy:", "streams[0].table.notify.targets[0].type: table_property", "streams[1].table.location: required",
		"streams[2].table.format: hive tables take appends only", `streams[3].table.format: "orc"`, "catalog.uri: required"},
	"bad_name":                              {"name: \"my shop\""},
	"no_brokers":                            {"kafka.brokers:"},
	"bad_broker":                            {"kafka.brokers[1]:", "kafka-2"},
	"bad_start_offset":                      {"kafka.start_offset:", "oldest"},
	"bad_sasl_mechanism":                    {"kafka.sasl.mechanism:", "gssapi"},
	"sasl_without_username":                 {"kafka.sasl.username:"},
	"tls_cert_without_key":                  {"kafka.tls"},
	"catalog_type":                          {"catalog.type:", "rest"},
	"catalog_missing_uri_and_warehouse":     {"catalog.uri:", "catalog.warehouse:"},
	"checkpoint_interval_too_short":         {"checkpoint.interval:", "50ms"},
	"commit_failure_timeout_below_interval": {"checkpoint.commit_failure_timeout:"},
	"bad_duration":                          {"checkpoint.interval:", "1 minute"},
	"duration_without_unit":                 {"checkpoint.shutdown_timeout:", "30"},
	"bad_byte_size":                         {"writer.target_file_size:", "lots"},
	"negative_byte_size":                    {"streams[0].max_record_bytes:", "-1KiB"},
	"memory_budget_too_small":               {"memory_budget:", "32MiB"},
	"bad_compression":                       {"writer.compression:", "lz4"},
	"workers_negative":                      {"writer.workers:", "-1"},
	"workers_too_many":                      {"writer.workers:", "1000"},
	"workers_not_a_number":                  {"writer.workers:", "many"},
	"dead_letter_topic_and_file":            {"dead_letter:"},
	"dead_letter_neither":                   {"dead_letter:"},
	"no_streams":                            {"streams:"},
	"duplicate_stream_names":                {"streams[1].name:", "orders"},
	"two_streams_one_table":                 {"streams[1].table.name:", "streams[0]"},
	"topics_and_topic_regex":                {"streams[0].topics:"},
	"neither_topics_nor_regex":              {"streams[0].topics:"},
	"bad_topic_regex":                       {"streams[0].topic_regex:"},
	"format_not_json":                       {"streams[0].format:", "avro"},
	"no_columns":                            {"streams[0].columns:"},
	"duplicate_column":                      {"streams[0].columns[4].name:", "status"},
	"column_without_name":                   {"streams[0].columns[2].name:"},
	"column_without_type":                   {"streams[0].columns[2].type:"},
	"unknown_column_type":                   {"streams[0].columns[3].type:", "strng"},
	"decimal_precision_too_large":           {"streams[0].columns[2].type:", "40"},
	"list_of_lists":                         {"streams[0].columns[4].type:", "list<list<int>>"},
	"missing_event_time":                    {"streams[0].event_time:"},
	"event_time_unknown_column":             {"streams[0].event_time:", "created_at"},
	"event_time_string":                     {"streams[0].event_time:", "status", "string"},
	"etl_filter_not_bool":                   {"streams[0].etl.filter:", "bool"},
	"etl_int_times_double":                  {"streams[0].etl.filter:"},
	"topics_not_a_list":                     {"streams[0].topics: want a list"},
	"duplicate_key":                         {"event_time"},
	"shutdown_timeout_negative":             {"checkpoint.shutdown_timeout:", "-5s"},
	"fetch_max_bytes_too_large":             {"kafka.fetch_max_bytes:", "1GiB"},
	"etl_filter_unknown_column":             {"streams[0].etl.filter:", "price"},
	"etl_computed_column_clash":             {"streams[0].etl.columns[0].name:", "amount"},
	"etl_rename_missing_column":             {"streams[0].etl.rename.price:"},
	"etl_drop_missing_column":               {"streams[0].etl.drop[0]:", "price"},
	"table_without_namespace":               {"streams[0].table.name:", "orders"},
	"table_without_name":                    {"streams[0].table.name:"},
	"partition_unknown_column":              {"streams[0].table.partition[0]:", "created_at"},
	"partition_hour_of_string":              {"streams[0].table.partition[0]:", "hour(status)"},
	"partition_bucket_without_count":        {"streams[0].table.partition[0]:", "bucket(N, column)"},
	"partition_identity_of_float":           {"streams[0].table.partition[0]:", "float64"},
	"partition_unknown_transform":           {"streams[0].table.partition[0]:", "week"},
	"partition_dropped_column":              {"streams[0].table.partition[1]:", "status"},
	"undefined_env_var":                     {"kafka.sasl.password:", "SLUICE_TEST_UNDEFINED_PASSWORD"},
	"not_a_mapping":                         {"kafka:", "mapping"},
	"invalid_yaml":                          {"not valid YAML", "line "},
	"empty":                                 {"empty"},
	"match_header_and_field":                {"streams[0].match:", "streams[0].match.value:"},
	"export_protobuf_incomplete":            {"streams[0].export.protobuf:", "streams[0].export.protobuf.message:"},
	"notify_problems": {"streams[0].table.notify:", "streams[0].table.notify.delay:", "streams[0].table.notify.targets[0].topic:",
		"streams[0].table.notify.targets[1].url:", "streams[0].table.notify.targets[2].type:",
		"streams[1].watermark.idle_timeout:", "streams[1].late.table:", "streams[1].late.policy:"},
	"many_problems": {
		"memory_budget:", "kafka.brokers[0]:", "kafka.start_offset:", "kafka.sasl.username:",
		"catalog.type:", "catalog.uri:", "catalog.warehouse:", "checkpoint.interval:",
		"writer.compression:", "writer.workers:", "dead_letter:",
		"streams[0].topics:", "streams[0].columns[2].name:",
		"streams[1].name:", "streams[1].topics:", "streams[1].format:", "streams[1].columns[0].type:",
	},
}

// TestConfigBad loads every testdata/*.bad.yaml, expects it to fail, and
// compares the message with the golden NAME.bad.yaml.err; run with -update to
// rewrite the goldens after a deliberate change of wording.
func TestConfigBad(t *testing.T) {
	unsetenv(t, "SLUICE_TEST_UNDEFINED_PASSWORD")
	files, err := filepath.Glob(filepath.Join("testdata", "*.bad.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".bad.yaml")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			p, err := Load(file)
			if err == nil {
				t.Fatalf("Load(%s) succeeded, want an error; streams: %d", file, len(p.Streams))
			}
			msg := err.Error()
			golden := file + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(msg+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./ingest/config -update to create it)", err)
				}
				if got := msg + "\n"; got != string(want) {
					t.Errorf("Load(%s) error differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", file, golden, got, want)
				}
			}
			wants, ok := badConfigs[name]
			if !ok {
				t.Fatalf("badConfigs has no entry for %s", file)
			}
			for _, w := range wants {
				if !strings.Contains(msg, w) {
					t.Errorf("Load(%s) error does not mention %q:\n%s", file, w, msg)
				}
			}
		})
	}
	for name := range badConfigs {
		if !seen[name] {
			t.Errorf("badConfigs names %s, but testdata/%s.bad.yaml does not exist", name, name)
		}
	}
}

// keyPath matches a dotted key path such as streams[0].etl.columns[1].name.
var keyPath = regexp.MustCompile(`^[A-Za-z0-9_-]+(\[\d+\])*(\.[A-Za-z0-9_-]+(\[\d+\])*)*$`)

// TestConfigReportsEveryProblem checks that validation does not stop at the
// first problem: each one is a separate joined error, on its own line, that
// starts with its key path.
func TestConfigReportsEveryProblem(t *testing.T) {
	for _, tc := range []struct {
		file string
		min  int
	}{
		{"many_problems.bad.yaml", len(badConfigs["many_problems"])},
		{"many_unknown_keys.bad.yaml", len(badConfigs["many_unknown_keys"])},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tc.file))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) {
				t.Fatalf("error is not a joined error: %v", err)
			}
			errs := joined.Unwrap()
			if len(errs) < tc.min {
				t.Errorf("got %d errors, want at least %d:\n%v", len(errs), tc.min, err)
			}
			for _, e := range errs {
				msg := e.Error()
				if strings.Contains(msg, "\n") {
					t.Errorf("error spans lines, so it does not read as one problem: %q", msg)
				}
				path, _, ok := strings.Cut(msg, ": ")
				if !ok || !keyPath.MatchString(path) {
					t.Errorf("error does not start with a key path: %q", msg)
				}
			}
		})
	}
}

var unknownKey = regexp.MustCompile(`^(\S+): unknown key \(line (\d+)\)$`)

// TestConfigUnknownKeyLine checks that an unknown key is reported at the line
// that holds it.
func TestConfigUnknownKeyLine(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "many_unknown_keys.bad.yaml"))
	if err == nil {
		t.Fatal("Load succeeded")
	}
	raw, rerr := os.ReadFile(filepath.Join("testdata", "many_unknown_keys.bad.yaml"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	lines := strings.Split(string(raw), "\n")
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error is not a joined error: %v", err)
	}
	for _, e := range joined.Unwrap() {
		m := unknownKey.FindStringSubmatch(e.Error())
		if m == nil {
			t.Fatalf("unexpected message %q", e)
		}
		line, _ := strconv.Atoi(m[2])
		key := m[1][strings.LastIndex(m[1], ".")+1:]
		if line < 1 || line > len(lines) || !strings.Contains(lines[line-1], key+":") {
			t.Errorf("%q: line %d does not hold key %s", e, line, key)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    ByteSize
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "1048576", want: 1 << 20},
		{in: "512B", want: 512},
		{in: "64KiB", want: 64 << 10},
		{in: "512MiB", want: 512 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "1.5MiB", want: 3 << 19},
		{in: "10KB", want: 10_000},
		{in: "3MB", want: 3_000_000},
		{in: "1GB", want: 1_000_000_000},
		{in: "1TB", want: 1_000_000_000_000},
		{in: " 8 MiB ", want: 8 << 20},
		{in: "", wantErr: true},
		{in: "lots", wantErr: true},
		{in: "MiB", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "-1KiB", wantErr: true},
		{in: "12XB", wantErr: true},
		{in: "1 mebibyte", wantErr: true},
		{in: "0x10", wantErr: true},
		{in: "NaNMiB", wantErr: true},
		{in: "InfGiB", wantErr: true},
		{in: "9999999TiB", wantErr: true},           // beyond int64
		{in: "99999999999999999999", wantErr: true}, // beyond int64
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseByteSize(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseByteSize(%q) = %d, want an error", tc.in, got)
				}
				if !strings.Contains(err.Error(), "512MiB") {
					t.Errorf("ParseByteSize(%q) error %q does not show an example", tc.in, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   ByteSize
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000, "1000"},
		{64 << 10, "64KiB"},
		{1536 << 10, "1536KiB"},
		{512 << 20, "512MiB"},
		{1 << 30, "1GiB"},
		{3 << 40, "3TiB"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		// What String renders, ParseByteSize reads back.
		if back, err := ParseByteSize(tc.in.String()); err != nil || back != tc.in {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in.String(), back, err, tc.in)
		}
	}
}

func TestByteSizeYAML(t *testing.T) {
	for _, tc := range []struct {
		doc     string
		want    ByteSize
		wantErr string
	}{
		{doc: "size: 64KiB", want: 64 << 10},
		{doc: `size: "1GiB"`, want: 1 << 30},
		{doc: "size: 4096", want: 4096},
		{doc: "size: lots", wantErr: `want a size like 512MiB, got "lots"`},
		{doc: "size: [1, 2]", wantErr: "want a size like 512MiB"},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			var v struct {
				Size ByteSize `yaml:"size"`
			}
			err := yaml.Unmarshal([]byte(tc.doc), &v)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Unmarshal(%q) = %d, %v; want error %q", tc.doc, v.Size, err, tc.wantErr)
				}
				return
			}
			if err != nil || v.Size != tc.want {
				t.Fatalf("Unmarshal(%q) = %d, %v; want %d", tc.doc, v.Size, err, tc.want)
			}
			out, err := yaml.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var back struct {
				Size ByteSize `yaml:"size"`
			}
			if err := yaml.Unmarshal(out, &back); err != nil || back.Size != tc.want {
				t.Errorf("round trip through %q = %d, %v; want %d", out, back.Size, err, tc.want)
			}
		})
	}
}

func TestDurationYAML(t *testing.T) {
	for _, tc := range []struct {
		doc     string
		want    time.Duration
		wantErr string
	}{
		{doc: "d: 1m", want: time.Minute},
		{doc: "d: 90s", want: 90 * time.Second},
		{doc: "d: 500ms", want: 500 * time.Millisecond},
		{doc: "d: 1h30m", want: 90 * time.Minute},
		{doc: `d: "2s"`, want: 2 * time.Second},
		{doc: "d: 0s", want: 0},
		{doc: "d: 1 minute", wantErr: `want a duration like 1m or 30s, got "1 minute"`},
		{doc: "d: 30", wantErr: `want a duration like 1m or 30s, got "30"`},
		{doc: "d: 1d", wantErr: `got "1d"`},
		{doc: "d: {s: 1}", wantErr: "want a duration like 1m or 30s"},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			var v struct {
				D Duration `yaml:"d"`
			}
			err := yaml.Unmarshal([]byte(tc.doc), &v)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Unmarshal(%q) = %v, %v; want error %q", tc.doc, v.D, err, tc.wantErr)
				}
				return
			}
			if err != nil || v.D.D() != tc.want {
				t.Fatalf("Unmarshal(%q) = %v, %v; want %v", tc.doc, v.D, err, tc.want)
			}
			if got := v.D.String(); got != tc.want.String() {
				t.Errorf("String() = %q, want %q", got, tc.want.String())
			}
			out, err := yaml.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var back struct {
				D Duration `yaml:"d"`
			}
			if err := yaml.Unmarshal(out, &back); err != nil || back.D != v.D {
				t.Errorf("round trip through %q = %v, %v; want %v", out, back.D, err, v.D)
			}
		})
	}
}

func TestParsePartitionField(t *testing.T) {
	out := schema.Schema{Fields: []schema.Field{
		{Name: "ts", Type: schema.Type{Kind: schema.KindTimestampTZ}},
		{Name: "local_ts", Type: schema.Type{Kind: schema.KindTimestamp}},
		{Name: "day", Type: schema.Type{Kind: schema.KindDate}},
		{Name: "user_id", Type: schema.Type{Kind: schema.KindInt64}},
		{Name: "shard", Type: schema.Type{Kind: schema.KindInt32}},
		{Name: "country", Type: schema.Type{Kind: schema.KindString}},
		{Name: "active", Type: schema.Type{Kind: schema.KindBool}},
		{Name: "blob", Type: schema.Type{Kind: schema.KindBinary}},
		{Name: "score", Type: schema.Type{Kind: schema.KindFloat64}},
		{Name: "ratio", Type: schema.Type{Kind: schema.KindFloat32}},
		{Name: "amount", Type: schema.Type{Kind: schema.KindDecimal, Precision: 12, Scale: 2}},
		{Name: "tags", Type: schema.Type{Kind: schema.KindList, Elem: &schema.Type{Kind: schema.KindString}}},
		{Name: "addr", Type: schema.Type{Kind: schema.KindStruct, Fields: []schema.Field{{Name: "city", Type: schema.Type{Kind: schema.KindString}}}}},
	}}
	for _, tc := range []struct {
		expr    string
		want    PartitionField
		wantErr string // substring; empty means success
	}{
		{expr: "hour(ts)", want: PartitionField{Transform: "hour", Column: "ts"}},
		{expr: "hour(local_ts)", want: PartitionField{Transform: "hour", Column: "local_ts"}},
		{expr: "day(ts)", want: PartitionField{Transform: "day", Column: "ts"}},
		{expr: "day(day)", want: PartitionField{Transform: "day", Column: "day"}},
		{expr: "month(day)", want: PartitionField{Transform: "month", Column: "day"}},
		{expr: "year(ts)", want: PartitionField{Transform: "year", Column: "ts"}},
		{expr: " day ( ts ) ", want: PartitionField{Transform: "day", Column: "ts"}},
		{expr: "bucket(16, user_id)", want: PartitionField{Transform: "bucket", Column: "user_id", Buckets: 16}},
		{expr: "bucket(1,country)", want: PartitionField{Transform: "bucket", Column: "country", Buckets: 1}},
		{expr: "bucket(1048576, shard)", want: PartitionField{Transform: "bucket", Column: "shard", Buckets: 1 << 20}},
		{expr: "bucket(8, amount)", want: PartitionField{Transform: "bucket", Column: "amount", Buckets: 8}},
		{expr: "bucket(8, blob)", want: PartitionField{Transform: "bucket", Column: "blob", Buckets: 8}},
		{expr: "bucket(8, ts)", want: PartitionField{Transform: "bucket", Column: "ts", Buckets: 8}},
		{expr: "identity(country)", want: PartitionField{Transform: "identity", Column: "country"}},
		{expr: "country", want: PartitionField{Transform: "identity", Column: "country"}},
		{expr: " shard ", want: PartitionField{Transform: "identity", Column: "shard"}},
		{expr: "active", want: PartitionField{Transform: "identity", Column: "active"}},
		{expr: "day", want: PartitionField{Transform: "identity", Column: "day"}},

		{expr: "hour(missing)", wantErr: `no output column "missing"`},
		{expr: "missing", wantErr: `no output column "missing"`},
		{expr: "", wantErr: `no output column ""`},
		{expr: "hour(country)", wantErr: "hour needs a timestamp column, country is string"},
		{expr: "hour(day)", wantErr: "hour needs a timestamp column, day is date"},
		{expr: "day(user_id)", wantErr: "day needs a timestamp or date column, user_id is int64"},
		{expr: "month(country)", wantErr: "month needs a timestamp or date column"},
		{expr: "year(score)", wantErr: "year needs a timestamp or date column"},
		{expr: "bucket(user_id)", wantErr: "want bucket(N, column)"},
		{expr: "bucket(0, user_id)", wantErr: "bucket count must be 1..1048576"},
		{expr: "bucket(1048577, user_id)", wantErr: "bucket count must be 1..1048576"},
		{expr: "bucket(99999999999999999999, user_id)", wantErr: "bucket count must be 1..1048576"},
		{expr: "bucket(8, score)", wantErr: "cannot bucket a float64 column"},
		{expr: "bucket(8, active)", wantErr: "cannot bucket a bool column"},
		{expr: "day(16, ts)", wantErr: "only bucket takes a number"},
		{expr: "identity(score)", wantErr: "cannot partition by identity of a float64 column"},
		{expr: "ratio", wantErr: "cannot partition by identity of a float32 column"},
		{expr: "identity(amount)", wantErr: "cannot partition by identity of a decimal(12,2) column"},
		{expr: "tags", wantErr: "cannot partition by identity of a list<string> column"},
		{expr: "addr", wantErr: "cannot partition by identity of a struct<city:string> column"},
		{expr: "week(ts)", wantErr: `unknown transform "week"`},
		{expr: "truncate(4, country)", wantErr: "only bucket takes a number"},
		{expr: "Day(ts)", wantErr: `no output column "Day(ts)"`},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := ParsePartitionField(tc.expr, out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePartitionField(%q) = %+v, %v; want error containing %q", tc.expr, got, err, tc.wantErr)
				}
				// The message quotes the expression, so it can be found in the file.
				if !strings.Contains(err.Error(), strconv.Quote(tc.expr)) {
					t.Errorf("error %q does not quote the expression %q", err, tc.expr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParsePartitionField(%q) = %+v, %v; want %+v", tc.expr, got, err, tc.want)
			}
		})
	}
}

// TestMatchFieldWithRegistry checks that a field cannot select among the
// records of a schema registry stream. (No golden file: validating such a
// stream asks the registry for its schema.)
func TestMatchFieldWithRegistry(t *testing.T) {
	s := Stream{Name: "orders", Topics: []string{"mixed"}, Format: "protobuf", EventTime: "ts", MaxRecordBytes: 1 << 20,
		Protobuf: &Protobuf{Message: "shop.v1.Order", SchemaRegistry: &SchemaRegistry{URLs: []string{"http://127.0.0.1:1"}}},
		Match:    &Match{Field: "type", Value: "ORDER"}}
	err := errors.Join(s.validate("streams[0]")...)
	if err == nil || !strings.Contains(err.Error(), "streams[0].match.field: cannot select records of a schema registry stream") {
		t.Fatalf("error = %v", err)
	}
}
