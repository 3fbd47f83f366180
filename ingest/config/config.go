// Package config loads and validates a pipeline file: one YAML document that
// names the Kafka cluster, the catalog, the checkpoint cadence and every
// stream with its columns, ETL and table. Unknown keys and bad values are
// refused with the dotted key path that holds them; defaults live in one place
// (applyDefaults).
package config

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/ingest/etl"
	"github.com/sluicehq/sluice/ingest/parse"
	"github.com/sluicehq/sluice/ingest/registry"
	"github.com/sluicehq/sluice/ingest/schema"
	"github.com/sluicehq/sluice/watermark"
)

// Pipeline is a whole pipeline file.
type Pipeline struct {
	// Name identifies the pipeline. It prefixes consumer group IDs and the
	// commit tokens stored in table snapshots. Required.
	Name string `yaml:"name"`
	// Kafka is the cluster streams read from.
	Kafka Kafka `yaml:"kafka"`
	// Catalog is where Iceberg tables are registered.
	Catalog Catalog `yaml:"catalog"`
	// Checkpoint sets how often data becomes visible and how failures escalate.
	Checkpoint Checkpoint `yaml:"checkpoint"`
	// Writer tunes the Parquet files.
	Writer Writer `yaml:"writer"`
	// DeadLetter is where records that cannot be ingested go.
	DeadLetter DeadLetter `yaml:"dead_letter"`
	// MemoryBudget bounds the memory of buffered records and open files
	// (default 512MiB). Fetching pauses and files close early to stay inside it.
	MemoryBudget ByteSize `yaml:"memory_budget"`
	// Streams are the independent flows from topics to tables.
	Streams []Stream `yaml:"streams"`
	// CDC are MySQL/MariaDB servers whose tables are mirrored.
	CDC []CDC `yaml:"cdc"`
	// Audit is where the audit trace goes (default: a local file).
	Audit Audit `yaml:"audit"`
	// HDFS is how hdfs:// warehouses and table locations are reached.
	HDFS HDFS `yaml:"hdfs"`
	// Dir is the pipeline file's directory, where file defaults live
	// (set by Load).
	Dir string `yaml:"-"`
}

// Kafka is the source cluster.
type Kafka struct {
	// Brokers are seed addresses, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// ClientID is sent to the brokers (default "sluice").
	ClientID string `yaml:"client_id"`
	// GroupPrefix prefixes consumer group IDs, which are
	// <group_prefix><pipeline>.<stream> (default "sluice.").
	GroupPrefix string `yaml:"group_prefix"`
	// StartOffset is where to begin in partitions a table has no position for:
	// "earliest" (default) or "latest".
	StartOffset string `yaml:"start_offset"`
	// FetchMaxBytes caps one fetch response, counted compressed (default
	// memory_budget/32, at most 32MiB).
	FetchMaxBytes ByteSize `yaml:"fetch_max_bytes"`
	// SASL authenticates to the brokers.
	SASL SASL `yaml:"sasl"`
	// TLS encrypts connections to the brokers.
	TLS TLS `yaml:"tls"`
}

// SASL is broker authentication. Use ${ENV_VAR} for the password.
type SASL struct {
	// Mechanism is "plain", "scram-sha-256" or "scram-sha-512"; empty disables SASL.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// TLS configures encrypted broker connections.
type TLS struct {
	// Enabled turns TLS on, with the system roots unless CAFile is set.
	Enabled bool `yaml:"enabled"`
	// CAFile, CertFile and KeyFile are PEM files; the pair enables mutual TLS.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the broker certificate.
	ServerName string `yaml:"server_name"`
}

// Catalog is an Iceberg SQL catalog.
type Catalog struct {
	// Type of catalog; only "sql" is supported (default).
	Type string `yaml:"type"`
	// URI is a SQLite file ("sqlite:///var/lib/sluice/catalog.db" or a plain
	// path) or a PostgreSQL URL ("postgres://user:pass@host/db"). Required.
	URI string `yaml:"uri"`
	// Warehouse is the root of new tables' locations, e.g.
	// "file:///var/lib/sluice/warehouse". Required.
	Warehouse string `yaml:"warehouse"`
	// Name is the catalog name stored with every table (default "sluice").
	Name string `yaml:"name"`
}

// Checkpoint sets the commit cadence.
type Checkpoint struct {
	// Interval between checkpoints, i.e. how fresh tables are (default 1m, at least 100ms).
	Interval Duration `yaml:"interval"`
	// CommitFailureTimeout is how long commits may keep failing before the
	// daemon exits non-zero so its supervisor notices (default 10m).
	CommitFailureTimeout Duration `yaml:"commit_failure_timeout"`
	// ShutdownTimeout bounds the last checkpoint on SIGTERM (default 25s).
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// Writer tunes data files.
type Writer struct {
	// TargetFileSize rolls a file once it has written about this much (default 256MiB).
	TargetFileSize ByteSize `yaml:"target_file_size"`
	// RowGroupSize flushes a row group once this much is buffered (default 16MiB).
	RowGroupSize ByteSize `yaml:"row_group_size"`
	// Compression codec: "zstd" (default), "snappy", "gzip" or "none".
	Compression string `yaml:"compression"`
	// Workers decode and write in parallel; Kafka partitions are spread over
	// them (default: the number of CPUs).
	Workers int `yaml:"workers"`
	// MaxOpenFiles caps files open at once per worker (default 10000). The
	// least recently written file is closed early beyond it, and the largest
	// files are closed early while open files exceed half the memory budget;
	// files closed early are still committed at the next checkpoint. A small
	// open file costs about 10 KiB and no file descriptor until its first row
	// group is written.
	MaxOpenFiles int `yaml:"max_open_files"`
}

// DeadLetter receives records that cannot be ingested, with the reason and
// their source topic, partition and offset. Exactly one of Topic and File.
type DeadLetter struct {
	// Topic is a Kafka topic on the source cluster.
	Topic string `yaml:"topic"`
	// File is a local JSON-lines file.
	File string `yaml:"file"`
	// MaxValueBytes keeps at most this much of each record value (default 1MiB).
	MaxValueBytes ByteSize `yaml:"max_value_bytes"`
}

// Stream reads topics into one table.
type Stream struct {
	// Name is unique in the pipeline; it names the consumer group and metrics. Required.
	Name string `yaml:"name"`
	// Topics to read. Exactly one of Topics and TopicRegex.
	Topics []string `yaml:"topics"`
	// TopicRegex reads every matching topic, including ones created later.
	TopicRegex string `yaml:"topic_regex"`
	// Format of record values: "json" (default), "protobuf", or change
	// events, "canal" (Canal flat messages) or "debezium", which keep the
	// table upserted by table.primary_key.
	Format string `yaml:"format"`
	// SourceTable keeps, of a change-event stream, only the changes of this
	// "database.table"; empty keeps every change.
	SourceTable string `yaml:"source_table"`
	// Protobuf describes protobuf records; required with format protobuf.
	Protobuf *Protobuf `yaml:"protobuf"`
	// Compression of each record value by its producer, undone before
	// decoding: "none" (default), "gzip", "zstd", "snappy" or "lz4". (Kafka's
	// own batch compression needs no setting.)
	Compression string `yaml:"compression"`
	// MaxRecordBytes dead-letters larger records (default 1MiB).
	MaxRecordBytes ByteSize `yaml:"max_record_bytes"`
	// Match selects this stream's records when several message types share
	// a topic: only records whose header or field has the value are
	// decoded; others are skipped (and counted). Streams reading one topic
	// with different matches route each type to its own table.
	Match *Match `yaml:"match"`
	// Columns declare the decoded fields. Required for JSON; protobuf
	// streams take their columns from the message type.
	Columns []Column `yaml:"columns"`
	// EventTime names the column holding each record's event time. Required,
	// except for change events, whose source time it is by default.
	EventTime string `yaml:"event_time"`
	// Watermark sets how the stream's event-time progress is tracked.
	Watermark Watermark `yaml:"watermark"`
	// Late decides what happens to records of a table partition that was
	// already announced ready.
	Late Late `yaml:"late"`
	// ETL transforms decoded rows.
	ETL etl.Config `yaml:"etl"`
	// Table is the destination. Exactly one of Table and Export.
	Table Table `yaml:"table"`
	// Export writes the ETL output to a Kafka topic instead of a table.
	Export *Export `yaml:"export"`
}

// Export writes a stream's rows to a Kafka topic on the source cluster, in
// transactions that commit with the consumer group's offsets: a consumer
// reading with read_committed sees every row exactly once.
type Export struct {
	// Topic to write to. Required.
	Topic string `yaml:"topic"`
	// Format of the record values: "json" (default), one object per row
	// keyed by column name, or "protobuf", messages of Protobuf.Message
	// whose fields are bound to the output columns by name.
	Format string `yaml:"format"`
	// Protobuf names the message type of exported records and where its
	// definition comes from (proto_files or descriptor_set); required with
	// format protobuf.
	Protobuf *Protobuf `yaml:"protobuf"`
	// Key names a top-level output column whose value becomes the record
	// key (default: no key).
	Key string `yaml:"key"`
}

// Protobuf names the message type of protobuf records and where its
// definition comes from: .proto files or a descriptor set (exactly one).
type Protobuf struct {
	// Message is the full name of the record's message type, e.g.
	// "acme.events.v1.Click". Required.
	Message string `yaml:"message"`
	// ProtoFiles are .proto files compiled at start; imports resolve against
	// ImportPaths and the well-known types.
	ProtoFiles []string `yaml:"proto_files"`
	// ImportPaths are the directories imports are looked up in (default ".").
	ImportPaths []string `yaml:"import_paths"`
	// DescriptorSet is a serialized google.protobuf.FileDescriptorSet with
	// its imports (protoc --include_imports --descriptor_set_out=FILE).
	DescriptorSet string `yaml:"descriptor_set"`
	// SchemaRegistry reads records in the Confluent wire format, each naming
	// its schema; the stream's columns come from the subject's latest version.
	SchemaRegistry *SchemaRegistry `yaml:"schema_registry"`
	// EnumAsNumber stores enums as int32 numbers instead of names.
	EnumAsNumber bool `yaml:"enum_as_number"`
	// MaxDepth is how many levels of nested messages become columns (default
	// 8); deeper fields, as in recursive messages, are left out.
	MaxDepth int `yaml:"max_depth"`
}

// SchemaRegistry is a Confluent-compatible schema registry.
type SchemaRegistry struct {
	// URLs of the registry. Required.
	URLs []string `yaml:"urls"`
	// Username and Password for basic auth (use ${ENV} for the password).
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Subject whose latest version gives the columns (default
	// "<first topic>-value").
	Subject string `yaml:"subject"`
}

// Registry opens the stream's schema registry source.
func (s *Stream) Registry() (*registry.Source, error) {
	pb := s.Protobuf
	subject := pb.SchemaRegistry.Subject
	if subject == "" && len(s.Topics) > 0 {
		subject = s.Topics[0] + "-value"
	}
	return registry.New(pb.SchemaRegistry.URLs, pb.SchemaRegistry.Username, pb.SchemaRegistry.Password,
		subject, pb.Message, pb.Options(s.EventTime, int(s.MaxRecordBytes)))
}

// Options returns the decoder options the section implies.
func (p *Protobuf) Options(eventTime string, maxRecordBytes int) parse.ProtoOptions {
	return parse.ProtoOptions{EventTime: eventTime, MaxRecordBytes: maxRecordBytes, EnumAsNumber: p.EnumAsNumber, MaxDepth: p.MaxDepth}
}

// Descriptor loads the message type.
func (p *Protobuf) Descriptor() (protoreflect.MessageDescriptor, error) {
	var files *protoregistry.Files
	var err error
	if p.DescriptorSet != "" {
		files, err = parse.LoadDescriptorSet(p.DescriptorSet)
	} else {
		files, err = parse.LoadProtoFiles(p.ProtoFiles, p.ImportPaths)
	}
	if err != nil {
		return nil, err
	}
	return parse.FindMessage(files, p.Message)
}

// Match selects records by a header or by a top-level field of the record
// value (exactly one of the two).
type Match struct {
	// Header is the record header's key.
	Header string `yaml:"header"`
	// Field is a top-level field of the record value: a JSON key, or a
	// protobuf field of the stream's message (string, bytes, enum, bool or
	// an integer kind). Not with a schema registry.
	Field string `yaml:"field"`
	// Value selects a record: the header's value, or the field's value as
	// text (an enum by name or number). Required.
	Value string `yaml:"value"`
}

// Column is one decoded field.
type Column struct {
	// Name is the JSON key and the column name. Required.
	Name string `yaml:"name"`
	// Type, e.g. string, int64, decimal(12,2), timestamptz(ms), list<string>. Required.
	Type string `yaml:"type"`
	// Required dead-letters records where the field is missing or null.
	Required bool `yaml:"required"`
}

// Watermark is a stream's event-time policy.
type Watermark struct {
	// OutOfOrderness is how far behind the largest event time seen on a
	// source partition its records may still arrive (default 1m).
	OutOfOrderness *Duration `yaml:"out_of_orderness"`
	// IdleTimeout is how long a source partition may go without records
	// before it stops holding the stream's watermark back (default 5m).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxDrift pauses a source partition whose watermark runs this far ahead
	// of the stream's, until the others catch up (default 0: off).
	MaxDrift Duration `yaml:"max_drift"`
}

// Policy is the watermark.Config the section sets (defaults for what is
// unset).
func (w Watermark) Policy() watermark.Config {
	ooo := DefaultOutOfOrderness
	if w.OutOfOrderness != nil {
		ooo = w.OutOfOrderness.D()
	}
	idle := w.IdleTimeout.D()
	if idle == 0 {
		idle = DefaultIdleTimeout
	}
	return watermark.Config{OutOfOrderness: ooo, IdleTimeout: idle, MaxDrift: w.MaxDrift.D()}
}

// Late is a stream's policy for records of announced partitions.
type Late struct {
	// Policy is "append" (default: the records are written and the
	// partition is announced again as updated), "table" (written to Table
	// instead) or "drop" (not written; counted).
	Policy string `yaml:"policy"`
	// Table is "namespace.table" for policy table: it gets the stream's
	// columns and partitioning, and is created when missing.
	Table string `yaml:"table"`
}

// Notify announces the table's complete time partitions.
type Notify struct {
	// Delay waits this much longer after the watermark passed a
	// partition's end before announcing it (default 0).
	Delay Duration `yaml:"delay"`
	// Targets receive every notice. At least one.
	Targets []NotifyTarget `yaml:"targets"`
}

// NotifyTarget is one receiver of notices.
type NotifyTarget struct {
	// Type is "kafka", "webhook", "success_file" or "table_property". Required.
	Type string `yaml:"type"`
	// Topic (kafka) on the source cluster; each notice is one JSON record
	// keyed by its id.
	Topic string `yaml:"topic"`
	// URL (webhook) receives each notice as a JSON POST.
	URL string `yaml:"url"`
	// Headers (webhook) are added to each request.
	Headers map[string]string `yaml:"headers"`
	// Timeout (webhook) of one request (default 10s).
	Timeout Duration `yaml:"timeout"`
}

// NotifyTypes are the notice target types.
var NotifyTypes = []string{"kafka", "webhook", "success_file", "table_property"}

// Table is an Iceberg table, or a Hive-style directory table.
type Table struct {
	// Name is "namespace.table". Required.
	Name string `yaml:"name"`
	// Format is "iceberg" (default: a table in the catalog) or "hive":
	// Parquet files in Hive-style partition directories under Location,
	// committed by a checkpoint record and renames (no catalog).
	Format string `yaml:"format"`
	// Location is a hive table's root directory: hdfs://namenode/path or
	// file:///path. Required with format hive.
	Location string `yaml:"location"`
	// Partition lists partition fields over output columns: "hour(col)",
	// "day(col)", "month(col)", "year(col)", "bucket(N, col)", "identity(col)"
	// or a bare column name (identity).
	Partition []string `yaml:"partition"`
	// Properties are set on the table when it is created.
	Properties map[string]string `yaml:"properties"`
	// Notify announces each time partition once the stream's watermark
	// passed it; the table must be partitioned by hour, day, month or year
	// of the event-time column.
	Notify *Notify `yaml:"notify"`
	// Compaction merges each time partition's small files once the
	// watermark passed it (before it is announced); same partitioning
	// requirement as Notify.
	Compaction *Compaction `yaml:"compaction"`
	// Retention keeps the table's history short.
	Retention Retention `yaml:"retention"`
	// PrimaryKey are the columns a change-event stream upserts by: required
	// top-level primitive columns. Required with formats canal and debezium.
	PrimaryKey []string `yaml:"primary_key"`
}

// Retention expires a table's old snapshots, deleting the files only they
// referenced, and merges its manifests, once an hour after a commit.
type Retention struct {
	// Disabled keeps every snapshot and manifest.
	Disabled bool `yaml:"disabled"`
	// MaxSnapshotAge: older snapshots expire (default 168h).
	MaxSnapshotAge Duration `yaml:"max_snapshot_age"`
	// MinSnapshots are kept however old (default 100).
	MinSnapshots int `yaml:"min_snapshots"`
	// MaxManifests: beyond this many in the current snapshot they are
	// merged (default 100).
	MaxManifests int `yaml:"max_manifests"`
}

func (r *Retention) applyDefaults() {
	if r.Disabled {
		return
	}
	if r.MaxSnapshotAge == 0 {
		r.MaxSnapshotAge = Duration(DefaultMaxSnapshotAge)
	}
	if r.MinSnapshots == 0 {
		r.MinSnapshots = DefaultMinSnapshots
	}
	if r.MaxManifests == 0 {
		r.MaxManifests = DefaultMaxManifests
	}
}

// Compaction merges small files inside the running pipeline.
type Compaction struct {
	// TargetFileSize is the size merged files roll at (default
	// writer.target_file_size).
	TargetFileSize ByteSize `yaml:"target_file_size"`
	// MinFiles is the fewest small files of a partition worth merging
	// (default 2).
	MinFiles int `yaml:"min_files"`
	// OpenFiles merges a partition not closed yet once it has this many
	// files (default 64; -1: only when it closes).
	OpenFiles int `yaml:"open_files"`
	// DeleteFiles: a table upserted from change events is rewritten with
	// its equality deletes applied once it holds this many delete files
	// (default 32; -1: never). The only setting for such tables.
	DeleteFiles int `yaml:"delete_files"`
}

// Load reads, expands ${ENV} references in, decodes, defaults and validates
// a pipeline file.
func Load(path string) (*Pipeline, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseIn(raw, filepath.Dir(path))
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Parse is Load on bytes.
func Parse(raw []byte) (*Pipeline, error) { return ParseIn(raw, ".") }

// ParseIn is Parse for a pipeline file in dir, where files it names by
// default live (the audit trace and spool).
func ParseIn(raw []byte, dir string) (*Pipeline, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("config is not valid YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("config is empty")
	}
	if errs := expandEnv(doc.Content[0], ""); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if errs := checkKeys(doc.Content[0], reflect.TypeFor[Pipeline](), ""); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// checkKeys has refused unknown keys and values of the wrong type, so this
	// decode does not fail in practice.
	p := Pipeline{Dir: dir}
	if err := doc.Decode(&p); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	p.applyDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// expandEnv replaces ${NAME} references in the scalar values of the parsed
// document. Expanding after parsing, not in the raw text, keeps a value from
// changing the document's structure (a password holding " #" or ": " stays
// one string) and ignores references in comments. Unset variables are
// reported with the key path that refers to them.
func expandEnv(n *yaml.Node, path string) []error {
	var errs []error
	switch n.Kind {
	case yaml.ScalarNode:
		if !envRef.MatchString(n.Value) {
			return nil
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			name := envRef.FindStringSubmatch(m)[1]
			v, ok := os.LookupEnv(name)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: environment variable %s is not set (line %d)", orRoot(path), name, n.Line))
			}
			return v
		})
		if n.Style == 0 {
			// An unquoted value is typed by what it expands to, as if it were
			// written in the file: "workers: ${N}" is a number.
			n.Tag = ""
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			errs = append(errs, expandEnv(n.Content[i+1], join(path, n.Content[i].Value))...)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			errs = append(errs, expandEnv(c, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return errs
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// checkKeys walks the document beside the Go type and reports every key the
// type does not have and every value that does not decode into its field,
// with its dotted path and line, so a typo is found before anything starts.
func checkKeys(n *yaml.Node, t reflect.Type, path string) []error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return checkValue(n, t, path)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []error
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return nil
			}
			return []error{fmt.Errorf("%s: want a mapping (line %d)", orRoot(path), n.Line)}
		}
		fields := map[string]reflect.StructField{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				fields[name] = f
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				errs = append(errs, fmt.Errorf("%s: unknown key (line %d)", join(path, k.Value), k.Line))
				continue
			}
			errs = append(errs, checkKeys(v, f.Type, join(path, k.Value))...)
		}
	case reflect.Slice:
		switch {
		case n.Kind == yaml.SequenceNode:
			for i, c := range n.Content {
				errs = append(errs, checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
			}
		case !isNull(n):
			errs = append(errs, fmt.Errorf("%s: want a list (line %d)", orRoot(path), n.Line))
		}
	case reflect.Map:
		switch {
		case n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				errs = append(errs, checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))...)
			}
		case !isNull(n):
			errs = append(errs, fmt.Errorf("%s: want a mapping (line %d)", orRoot(path), n.Line))
		}
	default:
		errs = append(errs, checkValue(n, t, path)...)
	}
	return errs
}

// checkValue decodes a leaf value on its own, so that an error names its key
// path; decoding the whole document reports only a line.
func checkValue(n *yaml.Node, t reflect.Type, path string) []error {
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return nil
	}
	msg := err.Error()
	// Only the decoder's own TypeError is reworded, not one an UnmarshalYAML
	// wrapped in its own explanation.
	if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 { //nolint:errorlint
		msg = te.Errors[0]
		if rest, ok := strings.CutPrefix(msg, fmt.Sprintf("line %d: ", n.Line)); ok {
			msg = rest
		}
	}
	return []error{fmt.Errorf("%s: %s (line %d)", orRoot(path), msg, n.Line)}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// validateChanges checks what a change-event stream needs: a primary key
// of required top-level columns, an unpartitioned table (an equality
// delete only reaches its own partition), and nothing that reads rows
// instead of changes.
func (s *Stream) validateChanges(path string, in schema.Schema) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, key, fmt.Sprintf(format, args...)))
	}
	if len(s.Table.PrimaryKey) == 0 {
		bad("table.primary_key", "required with format %s: the columns the table is upserted by", s.Format)
	}
	for i, k := range s.Table.PrimaryKey {
		f, ok := in.Field(k)
		switch {
		case !ok:
			bad(fmt.Sprintf("table.primary_key[%d]", i), "no column %q", k)
		case !f.Type.IsPrimitive():
			bad(fmt.Sprintf("table.primary_key[%d]", i), "column %q is %s, not primitive", k, f.Type)
		case !f.Required:
			bad(fmt.Sprintf("table.primary_key[%d]", i), "column %q must be required: true", k)
		}
	}
	if len(s.Table.Partition) > 0 {
		bad("table.partition", "a table upserted from change events is unpartitioned")
	}
	if !s.ETL.IsZero() {
		bad("etl", "not with format %s", s.Format)
	}
	if s.Export != nil {
		bad("export", "not with format %s", s.Format)
	}
	if s.Table.Notify != nil {
		bad("table.notify", "not with format %s", s.Format)
	}
	if s.Match != nil && s.Match.Field != "" {
		bad("match.field", "not with format %s; use source_table or match.header", s.Format)
	}
	return errs
}

// Defaults.
const (
	DefaultMemoryBudget         = 512 << 20
	DefaultCheckpointInterval   = time.Minute
	MinCheckpointInterval       = 100 * time.Millisecond
	DefaultCommitFailureTimeout = 10 * time.Minute
	DefaultShutdownTimeout      = 25 * time.Second
	DefaultTargetFileSize       = 256 << 20
	DefaultRowGroupSize         = 16 << 20
	DefaultMaxOpenFiles         = 10000
	DefaultMaxRecordBytes       = 1 << 20
	DefaultFetchMaxBytes        = 32 << 20
	DefaultOutOfOrderness       = time.Minute
	DefaultIdleTimeout          = 5 * time.Minute
	DefaultWebhookTimeout       = 10 * time.Second
	DefaultMaxSnapshotAge       = 7 * 24 * time.Hour
	DefaultMinSnapshots         = 100
	DefaultMaxManifests         = 100
	DefaultCompactOpenFiles     = 64
	DefaultCompactDeleteFiles   = 32
	// MaxFetchMaxBytes is franz-go's default BrokerMaxReadBytes, which the
	// client refuses to start below the fetch size; the streams do not raise it.
	MaxFetchMaxBytes = 100 << 20
)

func (p *Pipeline) applyDefaults() {
	if p.MemoryBudget == 0 {
		p.MemoryBudget = DefaultMemoryBudget
	}
	k := &p.Kafka
	if k.ClientID == "" {
		k.ClientID = "sluice"
	}
	if k.GroupPrefix == "" {
		k.GroupPrefix = "sluice."
	}
	if k.StartOffset == "" {
		k.StartOffset = "earliest"
	}
	if k.FetchMaxBytes == 0 {
		// The limit counts compressed bytes, and a fetch is held up to three
		// times over while it is processed: the response as read, its batches
		// decompressed, and a 160-byte kgo.Record per record. For JSON with
		// snappy or lz4 that is about four times the bytes fetched, so
		// budget/32 keeps a fetch inside the eighth of the budget that fetched
		// records get beside the workers' queues.
		k.FetchMaxBytes = min(DefaultFetchMaxBytes, p.MemoryBudget/32)
	}
	c := &p.Catalog
	if c.Type == "" {
		c.Type = "sql"
	}
	if c.Name == "" {
		c.Name = "sluice"
	}
	cp := &p.Checkpoint
	if cp.Interval == 0 {
		cp.Interval = Duration(DefaultCheckpointInterval)
	}
	if cp.CommitFailureTimeout == 0 {
		cp.CommitFailureTimeout = Duration(DefaultCommitFailureTimeout)
	}
	if cp.ShutdownTimeout == 0 {
		cp.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	}
	w := &p.Writer
	if w.TargetFileSize == 0 {
		w.TargetFileSize = DefaultTargetFileSize
	}
	if w.RowGroupSize == 0 {
		w.RowGroupSize = DefaultRowGroupSize
	}
	if w.Compression == "" {
		w.Compression = "zstd"
	}
	if w.Workers == 0 {
		w.Workers = runtime.GOMAXPROCS(0)
	}
	if w.MaxOpenFiles == 0 {
		w.MaxOpenFiles = DefaultMaxOpenFiles
	}
	if p.DeadLetter.MaxValueBytes == 0 {
		p.DeadLetter.MaxValueBytes = 1 << 20
	}
	for i := range p.CDC {
		p.CDC[i].applyDefaults()
	}
	p.Audit.applyDefaults(p.Dir)
	p.HDFS.applyDefaults()
	for i := range p.Streams {
		s := &p.Streams[i]
		if s.Format == "" {
			s.Format = "json"
		}
		if s.MaxRecordBytes == 0 {
			s.MaxRecordBytes = DefaultMaxRecordBytes
		}
		if s.Table.Format == "" {
			s.Table.Format = "iceberg"
		}
		if s.Watermark.OutOfOrderness == nil {
			d := Duration(DefaultOutOfOrderness)
			s.Watermark.OutOfOrderness = &d
		}
		if s.Watermark.IdleTimeout == 0 {
			s.Watermark.IdleTimeout = Duration(DefaultIdleTimeout)
		}
		if s.Late.Policy == "" {
			s.Late.Policy = "append"
		}
		if c := s.Table.Compaction; c != nil && c.OpenFiles == 0 {
			c.OpenFiles = DefaultCompactOpenFiles
		}
		if s.Format == "canal" || s.Format == "debezium" {
			if s.Table.Compaction == nil {
				s.Table.Compaction = &Compaction{}
			}
			if s.Table.Compaction.DeleteFiles == 0 {
				s.Table.Compaction.DeleteFiles = DefaultCompactDeleteFiles
			}
		}
		s.Table.Retention.applyDefaults()
		if n := s.Table.Notify; n != nil {
			for i := range n.Targets {
				if n.Targets[i].Type == "webhook" && n.Targets[i].Timeout == 0 {
					n.Targets[i].Timeout = Duration(DefaultWebhookTimeout)
				}
			}
		}
	}
}

// Validate reports every invalid value with its key path.
func (p *Pipeline) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if p.Name == "" {
		bad("name", "required")
	} else if !validName.MatchString(p.Name) {
		bad("name", "%q may hold only letters, digits, '_', '-' and '.'", p.Name)
	}
	if p.MemoryBudget < 64<<20 {
		bad("memory_budget", "%s is below the minimum 64MiB", p.MemoryBudget)
	}
	if len(p.Kafka.Brokers) == 0 && (len(p.Streams) > 0 || p.DeadLetter.Topic != "") {
		bad("kafka.brokers", "at least one broker is required")
	}
	for i, b := range p.Kafka.Brokers {
		if !strings.Contains(b, ":") {
			bad(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if p.Kafka.FetchMaxBytes > MaxFetchMaxBytes {
		bad("kafka.fetch_max_bytes", "%s is above the maximum %s", p.Kafka.FetchMaxBytes, ByteSize(MaxFetchMaxBytes))
	}
	if s := p.Kafka.StartOffset; s != "earliest" && s != "latest" {
		bad("kafka.start_offset", "%q is not earliest or latest", s)
	}
	switch p.Kafka.SASL.Mechanism {
	case "", "plain", "scram-sha-256", "scram-sha-512":
	default:
		bad("kafka.sasl.mechanism", "%q is not plain, scram-sha-256 or scram-sha-512", p.Kafka.SASL.Mechanism)
	}
	if p.Kafka.SASL.Mechanism != "" && p.Kafka.SASL.Username == "" {
		bad("kafka.sasl.username", "required with a SASL mechanism")
	}
	if (p.Kafka.TLS.CertFile == "") != (p.Kafka.TLS.KeyFile == "") {
		bad("kafka.tls", "cert_file and key_file go together")
	}
	if p.Catalog.Type != "sql" {
		bad("catalog.type", "%q is not supported (want sql)", p.Catalog.Type)
	}
	if p.NeedsCatalog() || p.Catalog.URI != "" || p.Catalog.Warehouse != "" {
		if p.Catalog.URI == "" {
			bad("catalog.uri", "required (a SQLite path or a postgres:// URL)")
		}
		if p.Catalog.Warehouse == "" {
			bad("catalog.warehouse", "required (e.g. file:///var/lib/sluice/warehouse)")
		}
	}
	if iv := p.Checkpoint.Interval.D(); iv < MinCheckpointInterval {
		bad("checkpoint.interval", "%s is below the minimum %s", iv, MinCheckpointInterval)
	}
	if p.Checkpoint.CommitFailureTimeout.D() < p.Checkpoint.Interval.D() {
		bad("checkpoint.commit_failure_timeout", "%s is shorter than checkpoint.interval", p.Checkpoint.CommitFailureTimeout)
	}
	if p.Checkpoint.ShutdownTimeout < 0 {
		bad("checkpoint.shutdown_timeout", "%s is negative", p.Checkpoint.ShutdownTimeout)
	}
	if p.Writer.TargetFileSize < 1<<20 {
		bad("writer.target_file_size", "%s is below the minimum 1MiB", p.Writer.TargetFileSize)
	}
	if p.Writer.RowGroupSize < 64<<10 {
		bad("writer.row_group_size", "%s is below the minimum 64KiB", p.Writer.RowGroupSize)
	}
	switch p.Writer.Compression {
	case "zstd", "snappy", "gzip", "none":
	default:
		bad("writer.compression", "%q is not zstd, snappy, gzip or none", p.Writer.Compression)
	}
	if p.Writer.Workers < 1 || p.Writer.Workers > 256 {
		bad("writer.workers", "%d is outside 1..256", p.Writer.Workers)
	}
	if p.Writer.MaxOpenFiles < 1 {
		bad("writer.max_open_files", "%d must be at least 1", p.Writer.MaxOpenFiles)
	}
	if p.DeadLetter.Topic != "" && p.DeadLetter.File != "" || len(p.Streams) > 0 && p.DeadLetter.Topic == "" && p.DeadLetter.File == "" {
		bad("dead_letter", "set exactly one of topic and file")
	}
	errs = append(errs, p.Audit.validate()...)
	errs = append(errs, p.HDFS.validate()...)
	if len(p.Streams) == 0 && len(p.CDC) == 0 {
		bad("streams", "at least one stream or cdc source is required")
	}
	sources := map[string]bool{}
	for i := range p.CDC {
		c := &p.CDC[i]
		at := fmt.Sprintf("cdc[%d]", i)
		if sources[c.Name] {
			bad(at+".name", "%q is used by another cdc source", c.Name)
		}
		sources[c.Name] = true
		errs = append(errs, c.validate(at)...)
	}
	names, tables := map[string]bool{}, map[string]int{}
	for i := range p.Streams {
		s := &p.Streams[i]
		path := fmt.Sprintf("streams[%d]", i)
		if s.Name == "" {
			bad(path+".name", "required")
		} else if !validName.MatchString(s.Name) {
			bad(path+".name", "%q may hold only letters, digits, '_', '-' and '.'", s.Name)
		} else if names[s.Name] {
			bad(path+".name", "%q is used by another stream", s.Name)
		}
		names[s.Name] = true
		if prev, ok := tables[s.Table.Name]; ok && s.Table.Name != "" && s.Export == nil {
			bad(path+".table.name", "%q is also written by streams[%d]; one stream per table", s.Table.Name, prev)
		}
		tables[s.Table.Name] = i
		if s.Late.Table != "" {
			if prev, ok := tables[s.Late.Table]; ok {
				bad(path+".late.table", "%q is also written by streams[%d]; one stream per table", s.Late.Table, prev)
			}
			tables[s.Late.Table] = i
		}
		errs = append(errs, s.validate(path)...)
	}
	return errors.Join(errs...)
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// InputSchema is the schema of decoded records.
func (s *Stream) InputSchema() (schema.Schema, error) {
	if s.Format == "protobuf" && s.Protobuf != nil {
		var md protoreflect.MessageDescriptor
		var err error
		if s.Protobuf.SchemaRegistry != nil {
			var src *registry.Source
			if src, err = s.Registry(); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				md, err = src.Latest(ctx)
				cancel()
			}
		} else {
			md, err = s.Protobuf.Descriptor()
		}
		if err != nil {
			return schema.Schema{}, fmt.Errorf("protobuf: %w", err)
		}
		sch, err := parse.ProtoSchema(md, s.Protobuf.Options(s.EventTime, int(s.MaxRecordBytes)))
		if err != nil {
			return schema.Schema{}, fmt.Errorf("protobuf: %w", err)
		}
		return sch, nil
	}
	var out schema.Schema
	var errs []error
	for i, c := range s.Columns {
		t, err := schema.ParseType(c.Type)
		if err != nil {
			errs = append(errs, fmt.Errorf("columns[%d].type: %w", i, err))
			continue
		}
		out.Fields = append(out.Fields, schema.Field{Name: c.Name, Type: t, Required: c.Required})
	}
	return out, errors.Join(errs...)
}

func (s *Stream) validate(path string) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, key, fmt.Sprintf(format, args...)))
	}
	if (len(s.Topics) == 0) == (s.TopicRegex == "") {
		bad("topics", "set exactly one of topics and topic_regex")
	}
	if s.TopicRegex != "" {
		if _, err := regexp.Compile(s.TopicRegex); err != nil {
			bad("topic_regex", "%v", err)
		}
	}
	switch s.Format {
	case "json":
		if s.Protobuf != nil {
			bad("protobuf", "only with format: protobuf")
		}
	case "protobuf":
		switch pb := s.Protobuf; {
		case pb == nil:
			bad("protobuf", "required with format: protobuf (message and proto_files or descriptor_set)")
		default:
			sources := 0
			for _, set := range []bool{len(pb.ProtoFiles) > 0, pb.DescriptorSet != "", pb.SchemaRegistry != nil} {
				if set {
					sources++
				}
			}
			if sources != 1 {
				bad("protobuf", "set exactly one of proto_files, descriptor_set and schema_registry")
			}
			if pb.Message == "" && pb.SchemaRegistry == nil {
				bad("protobuf.message", "required: the full name of the record's message type")
			}
			if reg := pb.SchemaRegistry; reg != nil {
				if len(reg.URLs) == 0 {
					bad("protobuf.schema_registry.urls", "at least one URL is required")
				}
				if reg.Subject == "" && len(s.Topics) == 0 {
					bad("protobuf.schema_registry.subject", "required with topic_regex")
				}
				if s.Compression != "" && s.Compression != "none" {
					bad("compression", "not with schema_registry (the wire format is not compressed)")
				}
			}
			if pb.MaxDepth < 0 || pb.MaxDepth > parse.MaxProtoDepth {
				bad("protobuf.max_depth", "%d is outside 0..%d", pb.MaxDepth, parse.MaxProtoDepth)
			}
		}
		if len(s.Columns) > 0 {
			bad("columns", "protobuf streams take their columns from the message type; remove columns")
		}
	case "canal", "debezium":
		if s.Protobuf != nil {
			bad("protobuf", "only with format: protobuf")
		}
		if s.Compression != "" && s.Compression != "none" {
			bad("compression", "not with format %s", s.Format)
		}
	default:
		bad("format", "%q is not supported (want json, protobuf, canal or debezium)", s.Format)
	}
	changes := s.Format == "canal" || s.Format == "debezium"
	if s.SourceTable != "" && !changes {
		bad("source_table", "only with format canal or debezium")
	} else if db, tb, ok := strings.Cut(s.SourceTable, "."); s.SourceTable != "" && (!ok || db == "" || tb == "") {
		bad("source_table", "%q is not database.table", s.SourceTable)
	}
	if s.Compression == "" {
		s.Compression = "none"
	}
	if !slices.Contains(parse.Compressions, s.Compression) {
		bad("compression", "%q is not one of %s", s.Compression, strings.Join(parse.Compressions, ", "))
	}
	if s.Match != nil {
		if (s.Match.Header == "") == (s.Match.Field == "") {
			bad("match", "set exactly one of header and field")
		}
		if s.Match.Field != "" && s.Protobuf != nil && s.Protobuf.SchemaRegistry != nil {
			bad("match.field", "cannot select records of a schema registry stream (their message types differ); use match.header")
		}
		if s.Match.Value == "" {
			bad("match.value", "required")
		}
	}
	if w := s.Watermark; w.OutOfOrderness != nil && *w.OutOfOrderness < 0 {
		bad("watermark.out_of_orderness", "%s is negative", *w.OutOfOrderness)
	}
	if s.Watermark.IdleTimeout < 0 {
		bad("watermark.idle_timeout", "%s is negative", s.Watermark.IdleTimeout)
	}
	if s.Watermark.MaxDrift < 0 {
		bad("watermark.max_drift", "%s is negative", s.Watermark.MaxDrift)
	}
	switch s.Late.Policy {
	case "append", "drop":
		if s.Late.Table != "" {
			bad("late.table", "only with late.policy table")
		}
	case "table":
		if ns, name, ok := strings.Cut(s.Late.Table, "."); !ok || ns == "" || name == "" || strings.Contains(name, ".") {
			bad("late.table", "%q is not namespace.table", s.Late.Table)
		} else if s.Late.Table == s.Table.Name {
			bad("late.table", "is the stream's own table")
		}
	default:
		bad("late.policy", "%q is not append, table or drop", s.Late.Policy)
	}
	if s.Late.Policy != "append" && s.Table.Notify == nil {
		bad("late.policy", "%s needs table.notify: records are late once their partition was announced", s.Late.Policy)
	}
	if s.MaxRecordBytes < 64 {
		bad("max_record_bytes", "%s is below the minimum 64 bytes", s.MaxRecordBytes)
	}
	if len(s.Columns) == 0 && s.Format != "protobuf" {
		bad("columns", "at least one column is required")
	}
	seen := map[string]bool{}
	for i, c := range s.Columns {
		switch {
		case c.Name == "":
			bad(fmt.Sprintf("columns[%d].name", i), "required")
		case seen[c.Name]:
			bad(fmt.Sprintf("columns[%d].name", i), "%q is declared twice", c.Name)
		}
		seen[c.Name] = true
		if c.Type == "" {
			bad(fmt.Sprintf("columns[%d].type", i), "required")
		}
	}
	in, err := s.InputSchema()
	if err != nil {
		for _, e := range unjoin(err) {
			errs = append(errs, fmt.Errorf("%s.%w", path, e))
		}
		return errs
	}
	if s.EventTime == "" {
		if !changes {
			bad("event_time", "required: name the column holding the event time")
		}
	} else if f, ok := in.Field(s.EventTime); !ok {
		bad("event_time", "no column %q", s.EventTime)
	} else if k := f.Type.Kind; !f.Type.IsTimestamp() && k != schema.KindInt64 && k != schema.KindDate {
		bad("event_time", "column %q is %s; want timestamp, timestamptz, date or int64 (epoch milliseconds)", s.EventTime, f.Type)
	}
	out := in
	if !s.ETL.IsZero() {
		prog, err := etl.New(s.ETL, in)
		if err != nil {
			for _, e := range unjoin(err) {
				errs = append(errs, fmt.Errorf("%s.etl.%w", path, e))
			}
			return errs
		}
		out = prog.Output()
	}
	if s.Export != nil {
		if s.Table.Name != "" || len(s.Table.Partition) > 0 {
			bad("export", "set either table or export, not both")
		}
		if s.Export.Topic == "" {
			bad("export.topic", "required")
		}
		if s.Export.Format == "" {
			s.Export.Format = "json"
		}
		switch pb := s.Export.Protobuf; s.Export.Format {
		case "json":
			if pb != nil {
				bad("export.protobuf", "only with export.format: protobuf")
			}
		case "protobuf":
			switch {
			case pb == nil:
				bad("export.protobuf", "required with export.format: protobuf (message and proto_files or descriptor_set)")
			case pb.SchemaRegistry != nil:
				bad("export.protobuf.schema_registry", "not supported for export; give proto_files or descriptor_set")
			case (len(pb.ProtoFiles) > 0) == (pb.DescriptorSet != ""):
				bad("export.protobuf", "set exactly one of proto_files and descriptor_set")
			}
			if pb != nil && pb.Message == "" {
				bad("export.protobuf.message", "required: the full name of the exported message type")
			}
		default:
			bad("export.format", "%q is not supported (want json or protobuf)", s.Export.Format)
		}
		if s.Export.Key != "" {
			if f, ok := out.Field(s.Export.Key); !ok || !f.Type.IsPrimitive() {
				bad("export.key", "%q is not a top-level primitive output column", s.Export.Key)
			}
		}
		return errs
	}
	if changes {
		errs = append(errs, s.validateChanges(path, in)...)
	} else if len(s.Table.PrimaryKey) > 0 {
		bad("table.primary_key", "only with format canal or debezium")
	}
	errs = append(errs, s.validateFormat(path)...)
	if s.Table.Name == "" {
		bad("table.name", "required (namespace.table), or an export section")
	} else if ns, name, ok := strings.Cut(s.Table.Name, "."); !ok || ns == "" || name == "" || strings.Contains(name, ".") {
		bad("table.name", "%q is not namespace.table", s.Table.Name)
	}
	for i, expr := range s.Table.Partition {
		if _, err := ParsePartitionField(expr, out); err != nil {
			bad(fmt.Sprintf("table.partition[%d]", i), "%v", err)
		}
	}
	if r := s.Table.Retention; r.MaxSnapshotAge < 0 || r.MinSnapshots < 0 || r.MaxManifests < 0 {
		bad("table.retention", "max_snapshot_age, min_snapshots and max_manifests cannot be negative")
	}
	if c := s.Table.Compaction; c != nil && c.DeleteFiles < -1 {
		bad("table.compaction.delete_files", "%d is below -1", c.DeleteFiles)
	}
	if s.Table.Compaction != nil && s.Format != "canal" && s.Format != "debezium" {
		if _, _, err := s.TimePartition(); err != nil {
			bad("table.compaction", "%v", err)
		}
		if c := s.Table.Compaction; c.MinFiles < 0 || c.TargetFileSize < 0 || c.OpenFiles < -1 {
			bad("table.compaction", "min_files and target_file_size cannot be negative, open_files below -1")
		}
	}
	if s.Table.Notify != nil {
		if _, _, err := s.TimePartition(); err != nil {
			bad("table.notify", "%v", err)
		}
		errs = append(errs, s.Table.Notify.validate(path+".table.notify")...)
	}
	return errs
}

// validateFormat checks a table's format and what a hive table cannot do.
func (s *Stream) validateFormat(path string) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, key, fmt.Sprintf(format, args...)))
	}
	t := &s.Table
	switch t.Format {
	case "iceberg":
		if t.Location != "" {
			bad("table.location", "only with format hive (an Iceberg table's location comes from catalog.warehouse)")
		}
		return errs
	case "hive":
	default:
		bad("table.format", "%q is not iceberg or hive", t.Format)
		return errs
	}
	if u, err := url.Parse(t.Location); t.Location == "" {
		bad("table.location", "required with format hive (hdfs://namenode/path or file:///path)")
	} else if err != nil || (u.Scheme != "hdfs" && u.Scheme != "file") || u.Path == "" || u.Path == "/" {
		bad("table.location", "%q is not an hdfs:// or file:// directory URL", t.Location)
	}
	if s.Format == "canal" || s.Format == "debezium" {
		bad("table.format", "hive tables take appends only; change events need an Iceberg table")
	} else if t.Compaction != nil {
		bad("table.compaction", "not supported with format hive")
	}
	if len(t.Properties) > 0 {
		bad("table.properties", "not supported with format hive")
	}
	if s.Late.Policy == "table" {
		bad("late.policy", "table is not supported with format hive")
	}
	if n := t.Notify; n != nil {
		for i, target := range n.Targets {
			if target.Type == "table_property" {
				bad(fmt.Sprintf("table.notify.targets[%d].type", i), "table_property needs an Iceberg table")
			}
		}
	}
	return errs
}

// NeedsCatalog reports whether some table is an Iceberg table: every
// table but hive tables and Kafka exports.
func (p *Pipeline) NeedsCatalog() bool {
	if len(p.CDC) > 0 {
		return true
	}
	for i := range p.Streams {
		if s := &p.Streams[i]; s.Export == nil && !s.Hive() {
			return true
		}
	}
	return false
}

// Hive reports whether the stream writes a hive directory table.
func (s *Stream) Hive() bool { return s.Table.Format == "hive" }

// TimePartition finds the table partition field that notices announce:
// the first hour, day, month or year of the event-time column. It returns
// the field's index in table.partition and its transform.
func (s *Stream) TimePartition() (int, string, error) {
	for i, expr := range s.Table.Partition {
		pf, err := parsePartitionExpr(expr)
		if err != nil {
			continue
		}
		switch pf.Transform {
		case "hour", "day", "month", "year":
			if pf.Column == s.EventTime {
				return i, pf.Transform, nil
			}
		}
	}
	return 0, "", fmt.Errorf("notices need the table partitioned by hour, day, month or year of the event-time column %q (e.g. partition: [\"hour(%s)\"])", s.EventTime, s.EventTime)
}

func (n *Notify) validate(path string) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, key, fmt.Sprintf(format, args...)))
	}
	if n.Delay < 0 {
		bad("delay", "%s is negative", n.Delay)
	}
	if len(n.Targets) == 0 {
		bad("targets", "at least one target is required (%s)", strings.Join(NotifyTypes, ", "))
	}
	for i, t := range n.Targets {
		key := fmt.Sprintf("targets[%d]", i)
		switch t.Type {
		case "kafka":
			if t.Topic == "" {
				bad(key+".topic", "required for a kafka target")
			}
		case "webhook":
			if u, err := url.Parse(t.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(key+".url", "%q is not an http(s) URL", t.URL)
			}
			if t.Timeout < 0 {
				bad(key+".timeout", "%s is negative", t.Timeout)
			}
		case "success_file", "table_property":
		case "":
			bad(key+".type", "required (%s)", strings.Join(NotifyTypes, ", "))
		default:
			bad(key+".type", "%q is not one of %s", t.Type, strings.Join(NotifyTypes, ", "))
		}
		if t.Type != "kafka" && t.Topic != "" {
			bad(key+".topic", "only for a kafka target")
		}
		if t.Type != "webhook" && (t.URL != "" || len(t.Headers) > 0) {
			bad(key, "url and headers are only for a webhook target")
		}
	}
	return errs
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
