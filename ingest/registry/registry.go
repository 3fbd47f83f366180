// Package registry decodes protobuf records in the Confluent Schema
// Registry wire format: a magic byte, the schema ID, the message indexes,
// then the message. Schemas are fetched by ID (with their references),
// compiled once and cached; each (schema, message) gets its own wire
// decoder into the stream's columns.
package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/parquet-go/parquet-go"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/sluicehq/sluice/ingest/parse"
	"github.com/sluicehq/sluice/ingest/schema"
)

// ErrSchemaChanged is returned for a record whose message type adds
// columns to the stream's (compatibly): the stream must restart with the
// new columns before it can take the record.
var ErrSchemaChanged = errors.New("records carry a newer message type with more columns")

// SchemaChangedError names the schema that changed.
type SchemaChangedError struct {
	ID      int
	Changes []string
}

func (e *SchemaChangedError) Error() string {
	return fmt.Sprintf("schema %d changes the columns (%s)", e.ID, strings.Join(e.Changes, "; "))
}

func (e *SchemaChangedError) Unwrap() error { return ErrSchemaChanged }

// NeedsRestart tells the stream to restart before this record.
func (e *SchemaChangedError) NeedsRestart() bool { return true }

// Source fetches and compiles schemas of one subject. Safe for concurrent use.
type Source struct {
	cl      *sr.Client
	subject string
	message string // full name; empty: the message the indexes name
	opts    parse.ProtoOptions

	mu    sync.Mutex
	cache map[string]protoreflect.MessageDescriptor // "id/indexes"
	files map[int]*protoregistry.Files
}

// New connects to a registry (urls, optional basic auth).
func New(urls []string, user, pass, subject, message string, opts parse.ProtoOptions) (*Source, error) {
	copts := []sr.ClientOpt{sr.URLs(urls...)}
	if user != "" {
		copts = append(copts, sr.BasicAuth(user, pass))
	}
	cl, err := sr.NewClient(copts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	return &Source{cl: cl, subject: subject, message: message, opts: opts,
		cache: map[string]protoreflect.MessageDescriptor{}, files: map[int]*protoregistry.Files{}}, nil
}

// Latest returns the message type of the subject's latest version: the
// columns a (re)starting stream takes.
func (s *Source) Latest(ctx context.Context) (protoreflect.MessageDescriptor, error) {
	ss, err := s.cl.SchemaByVersion(ctx, s.subject, -1)
	if err != nil {
		return nil, fmt.Errorf("schema registry: latest schema of %s: %w", s.subject, err)
	}
	files, err := s.compile(ctx, ss.ID, ss.Schema)
	if err != nil {
		return nil, err
	}
	return pick(files, ss.ID, s.message, nil)
}

// messageByID returns the message type a record names.
func (s *Source) messageByID(ctx context.Context, id int, index []int) (protoreflect.MessageDescriptor, error) {
	key := strconv.Itoa(id) + "/" + fmt.Sprint(index)
	s.mu.Lock()
	md, ok := s.cache[key]
	s.mu.Unlock()
	if ok {
		return md, nil
	}
	sch, err := s.cl.SchemaByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("schema registry: schema %d: %w", id, err)
	}
	files, err := s.compile(ctx, id, sch)
	if err != nil {
		return nil, err
	}
	if md, err = pick(files, id, "", index); err != nil {
		// The schema is fine; the record names a message it does not have.
		return nil, &parse.RecordError{Reason: err.Error()}
	}
	s.mu.Lock()
	s.cache[key] = md
	s.mu.Unlock()
	return md, nil
}

// compile compiles a schema and its references.
func (s *Source) compile(ctx context.Context, id int, sch sr.Schema) (*protoregistry.Files, error) {
	s.mu.Lock()
	files, ok := s.files[id]
	s.mu.Unlock()
	if ok {
		return files, nil
	}
	if sch.Type != sr.TypeProtobuf {
		return nil, fmt.Errorf("schema registry: schema %d is %s, not PROTOBUF", id, sch.Type)
	}
	srcs := map[string]string{}
	main := fmt.Sprintf("schema-%d.proto", id)
	srcs[main] = sch.Schema
	if err := s.references(ctx, sch.References, srcs, 0); err != nil {
		return nil, fmt.Errorf("schema registry: schema %d: %w", id, err)
	}
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(srcs),
	})}
	compiled, err := c.Compile(ctx, main)
	if err != nil {
		return nil, fmt.Errorf("schema registry: compile schema %d: %w", id, err)
	}
	fd := compiled[0]
	reg := new(protoregistry.Files)
	if err := register(reg, fd); err != nil {
		return nil, fmt.Errorf("schema registry: schema %d: %w", id, err)
	}
	s.mu.Lock()
	s.files[id] = reg
	s.mu.Unlock()
	return reg, nil
}

func (s *Source) references(ctx context.Context, refs []sr.SchemaReference, srcs map[string]string, depth int) error {
	if depth > 16 {
		return errors.New("references nest too deep")
	}
	for _, ref := range refs {
		if _, ok := srcs[ref.Name]; ok {
			continue
		}
		ss, err := s.cl.SchemaByVersion(ctx, ref.Subject, ref.Version)
		if err != nil {
			return fmt.Errorf("reference %s (%s v%d): %w", ref.Name, ref.Subject, ref.Version, err)
		}
		srcs[ref.Name] = ss.Schema.Schema
		if err := s.references(ctx, ss.References, srcs, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// register adds a compiled file and its imports as runtime descriptors.
func register(reg *protoregistry.Files, fd protoreflect.FileDescriptor) error {
	if _, err := reg.FindFileByPath(fd.Path()); err == nil {
		return nil
	}
	imports := fd.Imports()
	for i := range imports.Len() {
		if err := register(reg, imports.Get(i).FileDescriptor); err != nil {
			return err
		}
	}
	if global, err := protoregistry.GlobalFiles.FindFileByPath(fd.Path()); err == nil {
		fd = global
	} else if fd, err = protodesc.NewFile(protodesc.ToFileDescriptorProto(fd), reg); err != nil {
		return err
	}
	return reg.RegisterFile(fd)
}

// pick finds the message: by name when given, else by the wire format's
// message indexes into the schema file (none means the first message).
func pick(files *protoregistry.Files, id int, name string, index []int) (protoreflect.MessageDescriptor, error) {
	if name != "" && index == nil {
		return parse.FindMessage(files, name)
	}
	fd, err := files.FindFileByPath(fmt.Sprintf("schema-%d.proto", id))
	if err != nil {
		return nil, err
	}
	if len(index) == 0 {
		index = []int{0}
	}
	msgs := fd.Messages()
	var md protoreflect.MessageDescriptor
	for _, i := range index {
		if i < 0 || i >= msgs.Len() {
			return nil, fmt.Errorf("schema %d has no message at indexes %v", id, index)
		}
		md = msgs.Get(i)
		msgs = md.Messages()
	}
	return md, nil
}

var header sr.ConfluentHeader

// Decoder decodes one worker's records; one per goroutine.
type Decoder struct {
	src     *Source
	layout  *schema.Layout
	columns schema.Schema // the stream's decoded columns
	byKey   map[string]*parse.Protobuf
	last    *parse.Protobuf
	lastKey string
	unknown int64
}

// NewDecoder decodes into layout, whose columns are the stream's.
func (s *Source) NewDecoder(layout *schema.Layout, columns schema.Schema) *Decoder {
	return &Decoder{src: s, layout: layout, columns: columns, byKey: map[string]*parse.Protobuf{}}
}

// Decode reads the wire-format header and decodes the message with the
// decoder of its schema. A schema that adds columns returns a
// *SchemaChangedError; one that cannot map onto the columns is a bad record.
func (d *Decoder) Decode(row parquet.Row, data []byte) (parquet.Row, int64, error) {
	id, rest, err := header.DecodeID(data)
	if err != nil {
		return row[:0], 0, &parse.RecordError{Reason: "not in the schema registry wire format: " + err.Error()}
	}
	index, rest, err := header.DecodeIndex(rest, 64)
	if err != nil {
		return row[:0], 0, &parse.RecordError{Reason: "bad message indexes: " + err.Error()}
	}
	key := strconv.Itoa(id) + "/" + fmt.Sprint(index)
	dec := d.last
	if key != d.lastKey {
		if dec = d.byKey[key]; dec == nil {
			if dec, err = d.bind(id, index); err != nil {
				return row[:0], 0, err
			}
			d.byKey[key] = dec
		}
		d.last, d.lastKey = dec, key
	}
	return dec.Decode(row, rest)
}

func (d *Decoder) bind(id int, index []int) (*parse.Protobuf, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	md, err := d.src.messageByID(ctx, id, index)
	if err != nil {
		// A bad message index is the record's fault. Otherwise the registry
		// could not be asked or the schema does not compile: the stream
		// stops rather than dead-lettering every record of that schema.
		return nil, err
	}
	cols, err := parse.ProtoSchema(md, d.src.opts)
	if err != nil {
		return nil, &parse.RecordError{Reason: fmt.Sprintf("schema %d: %v", id, err)}
	}
	changes, err := schema.Changes(d.columns, cols)
	if err != nil {
		return nil, &parse.RecordError{Reason: fmt.Sprintf("schema %d (%s) does not fit the stream's columns: %v", id, md.FullName(), err)}
	}
	for _, c := range changes {
		if strings.HasPrefix(c, "add column") || strings.HasPrefix(c, "widen column") {
			return nil, &SchemaChangedError{ID: id, Changes: changes}
		}
	}
	return parse.NewProtobuf(md, d.layout, d.src.opts)
}

// Reset resets every bound decoder.
func (d *Decoder) Reset() {
	for _, dec := range d.byKey {
		dec.Reset()
	}
}

// UnknownFields sums the unknown fields of every bound decoder.
func (d *Decoder) UnknownFields() int64 {
	var n int64
	for _, dec := range d.byKey {
		n += dec.UnknownFields()
	}
	return n
}
