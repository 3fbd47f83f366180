package parse

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/sluicehq/sluice/ingest/schema"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Protobuf decodes protobuf messages of one type into rows, straight from
// the wire format: no message is built per record (only the JSON columns
// of google.protobuf.Struct, Value, ListValue and Any go through
// protojson). Column types are those of ProtoSchema. It is not safe for
// concurrent use; use one per goroutine.
//
// It decodes a message in two passes. The first walks the tags once and
// notes in a slot per field where its values are (the last value of a
// singular scalar, every chunk of an embedded message, every value or
// packed run of a repeated field), skipping unknown fields. The second
// emits the fields in column order, scanning each embedded message when
// its turn comes; the chunks of a message that occurs more than once are
// scanned into the same slots in wire order, which is protobuf's merge.
// Each part of a message type in the schema has its own slots: a message
// type is never nested in itself within one schema (recursion is cut at
// MaxDepth), and the elements of a list are emitted one after another.
//
// Malformed records fail rather than being partly written, as with JSON:
// a dead-lettered record can be replayed, a silently altered one cannot.
// Unknown fields are skipped and counted (UnknownFields), so producers can
// add fields before the table does.
type Protobuf struct {
	top *pmsg
	// event is the event-time field and eventAt its position in top.
	event    *pfield
	eventAt  int
	maxBytes int
	maxDepth int
	// sorter orders the values of the top-level fields whose values come
	// out interleaved (see JSON.sort and pfield.sort).
	sorter columnSorter
	arena  arena
	// unknown counts unknown fields since creation; recUnknown those of the
	// record being decoded, added to unknown when it succeeds.
	unknown    atomic.Int64
	recUnknown int64
	num        []byte // scratch for the text of unknown enum numbers
	json       protoJSON
}

// pcard is the cardinality of a field, or what to do with a field that
// has no column.
type pcard uint8

const (
	pcSingle pcard = iota
	pcList
	pcMap
	pcSkip    // known, not in the layout: skipped, not counted as unknown
	pcCut     // a message below MaxDepth: a record holding it fails
	pcMissing // a column the message type lacks (an older version): always null
)

// pfield is how a field, a list element or a map key or value is read from
// the wire and where its values go in a row.
type pfield struct {
	name string
	num  protowire.Number
	card pcard
	// kind is how one value is converted (for lists, their elements'; for
	// maps, pkMessage: their entries), inner that of a wrapper's value.
	kind, inner pkind
	wire        protowire.Type // of one value
	// presence: null when absent. Without it an absent value is written as
	// its default, as protobuf reads it.
	presence bool
	required bool
	oneof    int // index of its oneof in the message, or -1
	idx      int // position in its message's fields and slots (-1: none)
	typ      schema.Type
	// Levels and columns, from the layout.
	col, def, nullDef, rep int
	leaves                 []int
	elem                   *pfield // list element
	msg                    *pmsg   // struct members; for maps, the entry (key, value)
	enum                   *penum  // enum names (pkEnumName)
	enumDefault            uint64  // the enum's default number, as on the wire
	jsonName               protoreflect.FullName
	// sort is set on a top-level field when some list's elements or map's
	// entries below it have more than one leaf column, so that its values
	// come out interleaved and must be put in column order.
	sort bool
	// mapKeys, mapOrder and mapShadowed are scratch for finding duplicate
	// keys (maps only). Kept per field: a map may hold maps in its values.
	mapKeys     []mapKey
	mapOrder    []int32
	mapShadowed []bool
}

// pmsg is the fields of one message in the schema, in column order, and
// the slots its values are gathered into.
type pmsg struct {
	fields []*pfield
	// byNum[n] is the field numbered n (nil: unknown); numbers past its end
	// are looked up in byNumMap.
	byNum    []*pfield
	byNumMap map[protowire.Number]*pfield
	slots    []pslot
	// cases[o] is the index of the member of oneof o seen last (-1: none
	// with a column).
	cases []int
}

// maxDirectNumber is the largest field number looked up by index rather
// than by hashing. Field numbers are almost always small and dense.
const maxDirectNumber = 1023

// pslot holds the values of one field of the message being decoded.
type pslot struct {
	n   int    // occurrences; 0 when absent
	v   uint64 // the last value of a singular scalar: varint or fixed
	b   []byte // the last value of a singular string or bytes
	occ []pocc // each value or packed run of a list, entry of a map, chunk of a message
}

// pocc is one occurrence of a field on the wire.
type pocc struct {
	b      []byte // a length-delimited value: a string, a message, a packed run
	v      uint64 // a varint or fixed value
	packed bool
}

// mapKey is the key of a map entry, normalised so that equal keys compare
// equal whatever their encoding.
type mapKey struct {
	v uint64
	b []byte
}

// penum holds the names of an enum's values.
type penum struct {
	min    int32
	dense  [][]byte // dense[n-min]; nil where n names no value
	sparse map[int32][]byte
}

// NewProtobuf returns a decoder of messages of type md into rows of l. The
// layout's columns must be fields of md with the types ProtoSchema gives
// them under opts, at any level; fields that are not columns are skipped
// (and not counted as unknown). It reports every problem at once.
func NewProtobuf(md protoreflect.MessageDescriptor, l *schema.Layout, opts ProtoOptions) (*Protobuf, error) {
	if md == nil {
		return nil, errors.New("parse: no message descriptor")
	}
	if l == nil || l.Parquet == nil {
		return nil, errors.New("parse: no schema layout")
	}
	errs := opts.validate()
	d := &Protobuf{maxBytes: opts.MaxRecordBytes, maxDepth: opts.maxDepth(), eventAt: -1}
	d.json.resolver = opts.Resolver
	if d.json.resolver == nil {
		d.json.resolver = protoregistry.GlobalTypes
	}
	b := protoBinder{opts: opts}
	top, err := b.message(md, l.Top, 1, "")
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	d.top = top
	for i, f := range top.fields {
		if f.name == opts.EventTime {
			d.event, d.eventAt = f, i
		}
	}
	switch {
	case opts.EventTime == "":
		errs = append(errs, errors.New("event_time: must name a field"))
	case d.event == nil:
		errs = append(errs, fmt.Errorf("event_time: field %q is not a column", opts.EventTime))
	case d.event.card != pcSingle || d.event.kind == pkDuration ||
		d.event.typ.Kind != schema.KindInt64 && d.event.typ.Kind != schema.KindTimestampTZ:
		errs = append(errs, fmt.Errorf("event_time: field %q is %s, not a google.protobuf.Timestamp or an integer of epoch milliseconds",
			opts.EventTime, d.event.typ))
	}
	if err := d.checkLayout(l); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, f := range top.fields {
		f.sort = f.interleaves()
	}
	d.sorter.counts = make([]int, l.NumColumns+1)
	return d, nil
}

// interleaves reports whether the values of f can come out of decoding in
// other than column order (see JSON.sort).
func (f *pfield) interleaves() bool {
	switch {
	case f.card == pcMap:
		return true // a key and a value per entry
	case f.card == pcList:
		return len(f.leaves) > 1 || f.elem.interleaves()
	case f.kind == pkMessage:
		for _, c := range f.msg.fields {
			if c.interleaves() {
				return true
			}
		}
	}
	return false
}

// protoBinder matches a layout with a message descriptor.
type protoBinder struct {
	opts ProtoOptions
}

// message binds nodes, the columns of a struct, to the fields of md at
// depth.
func (b *protoBinder) message(md protoreflect.MessageDescriptor, nodes []*schema.Node, depth int, path string) (*pmsg, error) {
	m := &pmsg{cases: make([]int, md.Oneofs().Len())}
	var errs []error
	fds := md.Fields()
	for _, n := range nodes {
		fpath := n.Field.Name
		if path != "" {
			fpath = path + "." + n.Field.Name
		}
		fd := fds.ByName(protoreflect.Name(n.Field.Name))
		if fd == nil {
			// An older version of the message, read into the columns of a
			// newer one: the column is null in its rows.
			if n.Field.Required {
				errs = append(errs, fmt.Errorf("parse: column %s: message %s has no field %s", fpath, md.FullName(), n.Field.Name))
				continue
			}
			f := &pfield{name: n.Field.Name, card: pcMissing, oneof: -1, typ: n.Field.Type}
			setLevels(f, n)
			f.idx = len(m.fields)
			m.fields = append(m.fields, f)
			continue
		}
		f, err := b.field(fd, n, depth, fpath)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.idx = len(m.fields)
		m.fields = append(m.fields, f)
		m.index(f)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for i := range fds.Len() {
		fd := fds.Get(i)
		f := m.lookup(fd.Number())
		if f != nil {
			continue
		}
		// Not a column: skipped, unless the schema cut it (see ProtoSchema).
		f = &pfield{name: string(fd.Name()), num: fd.Number(), card: pcSkip, oneof: -1, idx: -1}
		mp := protoMapper{enumAsNumber: b.opts.EnumAsNumber, maxDepth: b.opts.maxDepth()}
		if _, st, _ := mp.field(fd, depth); st == cut {
			f.card = pcCut
		}
		if od := fd.ContainingOneof(); od != nil {
			f.oneof = od.Index() // setting it clears the members that are columns
		}
		m.index(f)
	}
	m.slots = make([]pslot, len(m.fields))
	return m, nil
}

// index makes f findable by its number.
func (m *pmsg) index(f *pfield) {
	if f.num <= maxDirectNumber {
		if int(f.num) >= len(m.byNum) {
			m.byNum = append(m.byNum, make([]*pfield, int(f.num)+1-len(m.byNum))...)
		}
		m.byNum[f.num] = f
		return
	}
	if m.byNumMap == nil {
		m.byNumMap = map[protowire.Number]*pfield{}
	}
	m.byNumMap[f.num] = f
}

// lookup returns the field numbered num, or nil if the message has none.
func (m *pmsg) lookup(num protowire.Number) *pfield {
	if uint64(num) < uint64(len(m.byNum)) {
		return m.byNum[num]
	}
	return m.byNumMap[num] // nil map: nil
}

// field binds fd to n, its column.
func (b *protoBinder) field(fd protoreflect.FieldDescriptor, n *schema.Node, depth int, path string) (*pfield, error) {
	var f *pfield
	switch kind := n.Field.Type.Kind; {
	case fd.IsMap():
		if kind != schema.KindMap || len(n.Children) != 2 {
			return nil, fmt.Errorf("parse: column %s is %s, but field %s is a map", path, n.Field.Type, fd.FullName())
		}
		key, err := b.value(fd.MapKey(), n.Children[0], depth, path+".key")
		if err != nil {
			return nil, err
		}
		value, err := b.value(fd.MapValue(), n.Children[1], depth, path+".value")
		if err != nil {
			return nil, err
		}
		// A map entry is a message of a key and a value, without presence:
		// a missing value is its type's default (an empty message for
		// message values), as protobuf reads it.
		entry := &pmsg{}
		for i, c := range []*pfield{key, value} {
			c.name, c.num, c.idx = n.Children[i].Field.Name, protowire.Number(i+1), i
			entry.fields = append(entry.fields, c)
			entry.index(c)
		}
		entry.slots = make([]pslot, 2)
		f = &pfield{kind: pkMessage, wire: protowire.BytesType, card: pcMap, msg: entry, typ: n.Field.Type}
		setLevels(f, n)
	case fd.IsList():
		if kind != schema.KindList || len(n.Children) != 1 {
			return nil, fmt.Errorf("parse: column %s is %s, but field %s is repeated", path, n.Field.Type, fd.FullName())
		}
		elem, err := b.value(fd, n.Children[0], depth, path+"[]")
		if err != nil {
			return nil, err
		}
		f = &pfield{kind: elem.kind, inner: elem.inner, wire: elem.wire, card: pcList, elem: elem, typ: n.Field.Type}
		setLevels(f, n)
	default:
		var err error
		if f, err = b.value(fd, n, depth, path); err != nil {
			return nil, err
		}
		f.presence = fd.HasPresence()
	}
	f.name, f.num, f.oneof = n.Field.Name, fd.Number(), -1
	if od := fd.ContainingOneof(); od != nil {
		f.oneof = od.Index()
	}
	return f, nil
}

// value binds one value of fd (ignoring its cardinality) to n.
func (b *protoBinder) value(fd protoreflect.FieldDescriptor, n *schema.Node, depth int, path string) (*pfield, error) {
	mp := protoMapper{enumAsNumber: b.opts.EnumAsNumber}
	t, k, inner := mp.value(fd)
	f := &pfield{kind: k, inner: inner, wire: k.wire(), typ: n.Field.Type, oneof: -1}
	setLevels(f, n)
	if fd.Kind() == protoreflect.GroupKind {
		f.wire = protowire.StartGroupType
	}
	switch k {
	case pkMessage:
		if n.Field.Type.Kind != schema.KindStruct {
			return nil, fmt.Errorf("parse: column %s is %s, but field %s is a message", path, n.Field.Type, fd.FullName())
		}
		msg, err := b.message(fd.Message(), n.Children, depth+1, path)
		if err != nil {
			return nil, err
		}
		f.msg = msg
		return f, nil
	case pkEnumName:
		f.enum = newPenum(fd.Enum())
		fallthrough
	case pkEnumNumber:
		if v := fd.Default(); v.IsValid() { // not for lists, whose elements are never absent
			f.enumDefault = uint64(int64(v.Enum()))
		}
	case pkJSON:
		f.jsonName = fd.Message().FullName()
	}
	if !n.Field.Type.Equal(t) {
		return nil, fmt.Errorf("parse: column %s is %s, but field %s maps to %s", path, n.Field.Type, fd.FullName(), t)
	}
	return f, nil
}

func setLevels(f *pfield, n *schema.Node) {
	f.required = n.Field.Required
	f.col, f.def, f.nullDef, f.rep, f.leaves = n.Column, n.Def, n.Def, n.Rep, n.Leaves
	if !f.required {
		f.nullDef--
	}
}

func newPenum(ed protoreflect.EnumDescriptor) *penum {
	vals := ed.Values()
	e := &penum{}
	if vals.Len() == 0 {
		return e
	}
	lo, hi := int32(math.MaxInt32), int32(math.MinInt32)
	for i := range vals.Len() {
		n := int32(vals.Get(i).Number())
		lo, hi = min(lo, n), max(hi, n)
	}
	if int64(hi)-int64(lo) < 1024 {
		e.min, e.dense = lo, make([][]byte, int(hi-lo)+1)
	} else {
		e.sparse = make(map[int32][]byte, vals.Len())
	}
	for i := range vals.Len() {
		n := vals.Get(i).Number()
		// ByNumber gives the first of aliases, as protojson writes.
		name := []byte(vals.ByNumber(n).Name())
		if e.dense != nil {
			e.dense[int32(n)-e.min] = name
		} else {
			e.sparse[int32(n)] = name
		}
	}
	return e
}

func (e *penum) name(n int32) []byte {
	if e.dense != nil {
		if i := int64(n) - int64(e.min); i >= 0 && i < int64(len(e.dense)) {
			return e.dense[i]
		}
		return nil
	}
	return e.sparse[n]
}

// checkLayout verifies that the values Decode emits are ones parquet-go
// accepts for l, as JSON.checkLayout does: every leaf where the Parquet
// schema has it, in column order, with its physical type and levels.
func (d *Protobuf) checkLayout(l *schema.Layout) error {
	cols := l.Parquet.Columns()
	if len(cols) != l.NumColumns || l.NumColumns-1 > parquet.MaxColumnIndex {
		return fmt.Errorf("parse: layout has %d columns, parquet schema %d", l.NumColumns, len(cols))
	}
	next := 0
	var errs []error
	var check func(f *pfield, path string, rep int)
	check = func(f *pfield, path string, rep int) {
		if f.def > parquet.MaxDefinitionLevel || f.rep > parquet.MaxRepetitionLevel || f.nullDef < 0 {
			errs = append(errs, fmt.Errorf("parse: column %s nests too deeply", path))
			return
		}
		switch {
		case f.card == pcMissing:
			// Nulls for every leaf of the column, in order.
			if len(f.leaves) == 0 || f.leaves[0] != next {
				errs = append(errs, fmt.Errorf("parse: column %s is not where the layout has it", path))
				return
			}
			next += len(f.leaves)
			return
		case f.card == pcList:
			check(f.elem, path+"[]", f.rep)
			return
		case f.card == pcMap:
			for _, c := range f.msg.fields {
				check(c, path+"."+c.name, f.rep)
			}
			return
		case f.kind == pkMessage:
			for _, c := range f.msg.fields {
				check(c, path+"."+c.name, rep)
			}
			return
		}
		jf := &field{typ: f.typ}
		if f.typ.Kind == schema.KindDecimal && f.typ.Precision > 18 {
			jf.flba = schema.DecimalBytes(f.typ.Precision)
		}
		kind, length := physical(jf)
		if err := checkLeaf(l, cols, &next, path, f.col, kind, length, f.def, rep); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range d.top.fields {
		check(f, f.name, 0)
	}
	if len(errs) == 0 && next != len(cols) {
		errs = append(errs, fmt.Errorf("parse: layout covers %d of %d parquet columns", next, len(cols)))
	}
	return errors.Join(errs...)
}

// Decode appends one record's values to row[:0] in Parquet row order and
// returns the row and the event time in microseconds since the Unix epoch.
// Byte slices in the row (strings, binary, decimals) stay valid until Reset;
// the row does not refer to data.
//
// Every error it returns is a *RecordError.
func (d *Protobuf) Decode(row parquet.Row, data []byte) (parquet.Row, int64, error) {
	if d.maxBytes > 0 && len(data) > d.maxBytes {
		return row[:0], 0, recordErr("record of " + strconv.Itoa(len(data)) + " bytes exceeds max_record_bytes " + strconv.Itoa(d.maxBytes))
	}
	d.recUnknown = 0
	top := d.top
	top.reset()
	if err := d.scan(top, data); err != nil {
		return row[:0], 0, err
	}
	// Checked first so that a record without an event time is reported as
	// such even when something else is wrong with it too. "Absent" is
	// "not on the wire" even for a field without presence: an event time
	// of zero (1970) is never real, and is what a producer that forgot to
	// set it sends.
	if top.slot(d.eventAt) == nil {
		return row[:0], 0, &RecordError{Field: d.event.name, Reason: "missing event time"}
	}
	mark := d.arena.mark()
	row, us, err := d.emitTop(row[:0])
	if err != nil {
		d.arena.rollback(mark)
		return row[:0], 0, err
	}
	if d.recUnknown > 0 {
		d.unknown.Add(d.recUnknown)
	}
	return row, us, nil
}

// Reset releases the memory backing rows returned since the last Reset
// (call after the rows were written).
func (d *Protobuf) Reset() { d.arena.reset() }

// UnknownFields returns how many fields of numbers the message types do
// not declare were skipped in the records decoded successfully since the
// decoder was created. It is safe to call concurrently with Decode.
func (d *Protobuf) UnknownFields() int64 { return d.unknown.Load() }

func (d *Protobuf) emitTop(row parquet.Row) (parquet.Row, int64, *RecordError) {
	var event parquet.Value
	top := d.top
	for i, f := range top.fields {
		at := len(row)
		var err *RecordError
		if row, err = d.emitField(row, f, top.slot(i), 0); err != nil {
			return row, 0, err.in(f.name)
		}
		if i == d.eventAt {
			event = row[at] // a top-level primitive has exactly one value
		}
		if f.sort {
			// Only its own values can be out of order, and they are all of
			// its own columns, which are consecutive.
			d.sorter.sortColumns(row[at:], f.leaves[0], len(f.leaves))
		}
	}
	us := event.Int64()
	if d.event.kind != pkTimestamp { // epoch milliseconds
		if us > math.MaxInt64/1000 || us < math.MinInt64/1000 {
			return row, 0, &RecordError{Field: d.event.name, Reason: "event time " + strconv.FormatInt(us, 10) + " ms is out of range"}
		}
		us *= 1000
	}
	return row, us, nil
}

// reset forgets the values of the last message decoded.
func (m *pmsg) reset() {
	for i := range m.slots {
		s := &m.slots[i]
		s.n, s.occ = 0, s.occ[:0]
	}
	for i := range m.cases {
		m.cases[i] = -1
	}
}

// slot returns the slot of field i, or nil if the field is absent: not on
// the wire, or a oneof member that another member replaced.
func (m *pmsg) slot(i int) *pslot {
	s := &m.slots[i]
	if s.n == 0 {
		return nil
	}
	if o := m.fields[i].oneof; o >= 0 && m.cases[o] != i {
		return nil
	}
	return s
}

// scan notes where the values of m's fields are in b, a message body, in
// m's slots. It does not clear them first, so scanning the chunks of a
// message in turn merges them.
func (d *Protobuf) scan(m *pmsg, b []byte) *RecordError {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return wireErr(n)
		}
		b = b[n:]
		f := m.lookup(num)
		if f == nil || f.card == pcSkip {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return wireErr(n)
			}
			b = b[n:]
			if f == nil {
				d.recUnknown++
			} else if f.oneof >= 0 {
				m.cases[f.oneof] = -1
			}
			continue
		}
		if f.card == pcCut {
			return &RecordError{Field: f.name, Reason: "message nested deeper than max_depth " + strconv.Itoa(d.maxDepth)}
		}
		v, chunk, n := consumeValue(num, typ, b)
		if n < 0 {
			return wireErr(n).in(f.name)
		}
		b = b[n:]
		s := &m.slots[f.idx]
		if f.oneof >= 0 && m.cases[f.oneof] != f.idx {
			// Setting a oneof member clears the others; a member set again
			// after another starts afresh rather than merging.
			s.n, s.occ = 0, s.occ[:0]
			m.cases[f.oneof] = f.idx
		}
		switch {
		case typ != f.wire:
			if typ != protowire.BytesType || f.card != pcList || !f.kind.packable() {
				return &RecordError{Field: f.name, Reason: "wire type " + wireName(typ) + ", want " + wireName(f.wire)}
			}
			s.occ = append(s.occ, pocc{b: chunk, packed: true})
		case f.card == pcSingle && !f.kind.isMessage():
			s.v, s.b = v, chunk // the last value wins
		default:
			s.occ = append(s.occ, pocc{b: chunk, v: v})
		}
		s.n++
	}
	return nil
}

// consumeValue reads one field value of wire type typ from b: varints and
// fixed-width values as v, length-delimited and group values as chunk.
// n < 0 is a protowire error.
func consumeValue(num protowire.Number, typ protowire.Type, b []byte) (v uint64, chunk []byte, n int) {
	switch typ {
	case protowire.VarintType:
		v, n = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		v, n = protowire.ConsumeFixed64(b)
	case protowire.BytesType:
		chunk, n = protowire.ConsumeBytes(b)
	case protowire.Fixed32Type:
		var v32 uint32
		v32, n = protowire.ConsumeFixed32(b)
		v = uint64(v32)
	case protowire.StartGroupType:
		chunk, n = protowire.ConsumeGroup(num, b)
	default:
		n = protowire.ConsumeFieldValue(num, typ, b) // an error
	}
	return v, chunk, n
}

func wireErr(n int) *RecordError {
	return recordErr("invalid wire format: " + protowire.ParseError(n).Error())
}

func wireName(t protowire.Type) string {
	switch t {
	case protowire.VarintType:
		return "varint"
	case protowire.Fixed32Type:
		return "fixed32"
	case protowire.Fixed64Type:
		return "fixed64"
	case protowire.BytesType:
		return "length-delimited"
	case protowire.StartGroupType:
		return "start-group"
	case protowire.EndGroupType:
		return "end-group"
	}
	return "reserved " + strconv.Itoa(int(t))
}

// emitMsg appends the values of m's fields, as gathered by scan, with
// repetition level rep for the first value of each column.
func (d *Protobuf) emitMsg(row parquet.Row, m *pmsg, rep int) (parquet.Row, *RecordError) {
	for i, f := range m.fields {
		var err *RecordError
		// Members of one struct share the incoming repetition level: each
		// is the first value of its own column in this element.
		if row, err = d.emitField(row, f, m.slot(i), rep); err != nil {
			return row, err.in(f.name)
		}
	}
	return row, nil
}

// emitField appends the values of f, whose slot is s (nil: absent).
func (d *Protobuf) emitField(row parquet.Row, f *pfield, s *pslot, rep int) (parquet.Row, *RecordError) {
	switch f.card {
	case pcMissing:
		for _, col := range f.leaves {
			row = append(row, parquet.NullValue().Level(rep, f.nullDef, col))
		}
		return row, nil
	case pcList:
		if s == nil {
			return appendEmpty(row, f, rep), nil // absent repeated fields are empty
		}
		i := 0
		for j := range s.occ {
			o := &s.occ[j]
			var err *RecordError
			if o.packed {
				if row, i, err = d.emitPacked(row, f, o.b, rep, i); err != nil {
					return row, err
				}
				continue
			}
			r := rep
			if i > 0 {
				r = f.rep
			}
			if f.kind.isMessage() {
				row, err = d.emitMessage(row, f.elem, s.occ[j:j+1], r)
			} else {
				row, err = d.emitScalar(row, f.elem, f.kind, o.v, o.b, r)
			}
			if err != nil {
				return row, err.in("[" + strconv.Itoa(i) + "]")
			}
			i++
		}
		if i == 0 { // only empty packed runs
			row = appendEmpty(row, f, rep)
		}
		return row, nil
	case pcMap:
		if s == nil {
			return appendEmpty(row, f, rep), nil
		}
		return d.emitMap(row, f, s.occ, rep)
	}
	if s == nil {
		switch {
		case !f.presence:
			if f.kind.isMessage() { // a map's value: an empty message
				return d.emitMessage(row, f, nil, rep)
			}
			return d.emitScalar(row, f, f.kind, f.enumDefault, nil, rep)
		case f.required:
			return row, recordErr("missing required field")
		}
		for _, col := range f.leaves {
			row = append(row, parquet.NullValue().Level(rep, f.nullDef, col))
		}
		return row, nil
	}
	if f.kind.isMessage() {
		return d.emitMessage(row, f, s.occ, rep)
	}
	return d.emitScalar(row, f, f.kind, s.v, s.b, rep)
}

// appendEmpty appends an empty list or map.
func appendEmpty(row parquet.Row, f *pfield, rep int) parquet.Row {
	for _, col := range f.leaves {
		row = append(row, parquet.NullValue().Level(rep, f.def, col))
	}
	return row
}

// emitPacked appends the packed values in b, elements i on of list f.
func (d *Protobuf) emitPacked(row parquet.Row, f *pfield, b []byte, rep, i int) (parquet.Row, int, *RecordError) {
	for len(b) > 0 {
		var (
			v uint64
			n int
		)
		switch f.elem.wire {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v32 uint32
			v32, n = protowire.ConsumeFixed32(b)
			v = uint64(v32)
		default:
			v, n = protowire.ConsumeFixed64(b)
		}
		if n < 0 {
			return row, i, wireErr(n).in("[" + strconv.Itoa(i) + "]")
		}
		b = b[n:]
		r := rep
		if i > 0 {
			r = f.rep
		}
		var err *RecordError
		if row, err = d.emitScalar(row, f.elem, f.kind, v, nil, r); err != nil {
			return row, i, err.in("[" + strconv.Itoa(i) + "]")
		}
		i++
	}
	return row, i, nil
}

// emitMap appends the entries of map f. Of entries with equal keys only
// the last is written, as protobuf keeps only it.
func (d *Protobuf) emitMap(row parquet.Row, f *pfield, entries []pocc, rep int) (parquet.Row, *RecordError) {
	if err := d.shadowed(f, entries); err != nil {
		return row, err
	}
	entry := f.msg
	r := rep
	for i := range entries {
		if len(entries) > 1 && f.mapShadowed[i] {
			continue
		}
		entry.reset()
		err := d.scan(entry, entries[i].b)
		if err == nil {
			row, err = d.emitMsg(row, entry, r)
		}
		if err != nil {
			return row, err.in("[" + strconv.Itoa(i) + "]")
		}
		r = f.rep
	}
	return row, nil
}

// smallMap is the most entries whose keys are compared pairwise; larger
// maps are sorted by key.
const smallMap = 16

// shadowed sets f.mapShadowed[i] for each entry that a later one with an
// equal key replaces.
func (d *Protobuf) shadowed(f *pfield, entries []pocc) *RecordError {
	if len(entries) < 2 {
		return nil
	}
	key := f.msg.fields[0]
	f.mapKeys = f.mapKeys[:0]
	for i := range entries {
		k, err := d.mapKey(key, entries[i].b)
		if err != nil {
			return err.in("[" + strconv.Itoa(i) + "]")
		}
		f.mapKeys = append(f.mapKeys, k)
	}
	f.mapShadowed = slices.Grow(f.mapShadowed[:0], len(entries))[:len(entries)]
	clear(f.mapShadowed)
	keys := f.mapKeys
	if len(keys) <= smallMap {
		for i := range keys {
			for j := i + 1; j < len(keys); j++ {
				if keys[i].v == keys[j].v && bytes.Equal(keys[i].b, keys[j].b) {
					f.mapShadowed[i] = true
					break
				}
			}
		}
		return nil
	}
	f.mapOrder = f.mapOrder[:0]
	for i := range keys {
		f.mapOrder = append(f.mapOrder, int32(i))
	}
	slices.SortFunc(f.mapOrder, func(a, b int32) int {
		if c := compareKeys(keys[a], keys[b]); c != 0 {
			return c
		}
		return int(a - b)
	})
	for i := 0; i+1 < len(f.mapOrder); i++ {
		a, b := f.mapOrder[i], f.mapOrder[i+1]
		if compareKeys(keys[a], keys[b]) == 0 {
			f.mapShadowed[a] = true
		}
	}
	return nil
}

func compareKeys(a, b mapKey) int {
	if a.v != b.v {
		if a.v < b.v {
			return -1
		}
		return 1
	}
	return bytes.Compare(a.b, b.b)
}

// mapKey returns the key of a map entry, whose key field is key.
func (d *Protobuf) mapKey(key *pfield, b []byte) (mapKey, *RecordError) {
	var k mapKey
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return k, wireErr(n)
		}
		b = b[n:]
		if num != 1 {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return k, wireErr(n)
			}
			b = b[n:]
			continue
		}
		if typ != key.wire {
			return k, &RecordError{Field: "key", Reason: "wire type " + wireName(typ) + ", want " + wireName(key.wire)}
		}
		var v uint64
		v, k.b, n = consumeValue(num, typ, b) // typ is the key's wire type, checked above
		if n < 0 {
			return k, wireErr(n).in("key")
		}
		b = b[n:]
		// Normalise to the column value: an int32 may be sent in 5 or 10
		// bytes, a bool as any nonzero varint.
		switch key.kind {
		case pkInt32, pkSfixed32:
			v = uint64(int64(int32(v)))
		case pkSint32:
			v = uint64(int64(int32(protowire.DecodeZigZag(v & math.MaxUint32))))
		case pkUint32, pkFixed32:
			v = uint64(uint32(v))
		case pkBool:
			v = uint64(protowire.EncodeBool(v != 0))
		}
		k.v = v
	}
	return k, nil
}

// emitScalar appends the value v or b of kind k (f's, or the value of
// wrapper f) with repetition level rep.
func (d *Protobuf) emitScalar(row parquet.Row, f *pfield, k pkind, v uint64, b []byte, rep int) (parquet.Row, *RecordError) {
	// Each case appends its value as it builds it: staging it in a variable
	// shared by the cases costs more than the conversion (see JSON.leaf).
	switch k {
	case pkString:
		if !utf8.Valid(b) {
			return row, recordErr("invalid UTF-8")
		}
		return append(row, parquet.ByteArrayValue(d.copy(b)).Level(rep, f.def, f.col)), nil
	case pkInt64, pkSfixed64:
		return append(row, parquet.Int64Value(int64(v)).Level(rep, f.def, f.col)), nil
	case pkInt32, pkSfixed32, pkEnumNumber:
		return append(row, parquet.Int32Value(int32(v)).Level(rep, f.def, f.col)), nil
	case pkDouble:
		return append(row, parquet.DoubleValue(math.Float64frombits(v)).Level(rep, f.def, f.col)), nil
	case pkBool:
		return append(row, parquet.BooleanValue(v != 0).Level(rep, f.def, f.col)), nil
	case pkEnumName:
		name := f.enum.name(int32(v))
		if name == nil { // a number the enum does not declare (yet)
			d.num = strconv.AppendInt(d.num[:0], int64(int32(v)), 10)
			name = d.copy(d.num)
		}
		return append(row, parquet.ByteArrayValue(name).Level(rep, f.def, f.col)), nil
	case pkFloat:
		return append(row, parquet.FloatValue(math.Float32frombits(uint32(v))).Level(rep, f.def, f.col)), nil
	case pkSint32:
		return append(row, parquet.Int32Value(int32(protowire.DecodeZigZag(v&math.MaxUint32))).Level(rep, f.def, f.col)), nil
	case pkSint64:
		return append(row, parquet.Int64Value(protowire.DecodeZigZag(v)).Level(rep, f.def, f.col)), nil
	case pkUint32, pkFixed32:
		return append(row, parquet.Int64Value(int64(uint32(v))).Level(rep, f.def, f.col)), nil
	case pkUint64, pkFixed64:
		// decimal(20,0) is 9 bytes of big-endian two's complement.
		dst := d.arena.alloc(9)
		dst[0] = 0
		binary.BigEndian.PutUint64(dst[1:], v)
		return append(row, parquet.FixedLenByteArrayValue(dst).Level(rep, f.def, f.col)), nil
	case pkBytes:
		return append(row, parquet.ByteArrayValue(d.copy(b)).Level(rep, f.def, f.col)), nil
	}
	// Unreachable: messages are emitted by emitMessage.
	return row, recordErr("field kind " + strconv.Itoa(int(k)) + " is not a scalar")
}

// copy returns b copied into the arena.
func (d *Protobuf) copy(b []byte) []byte {
	dst := d.arena.alloc(len(b))
	copy(dst, b)
	return dst
}

// Ranges of valid google.protobuf.Timestamp and Duration values.
const (
	minTimestampSeconds = -62135596800 // 0001-01-01T00:00:00Z
	maxTimestampSeconds = 253402300799 // 9999-12-31T23:59:59Z
	maxDurationSeconds  = 315576000000 // 10,000 years
)

// emitMessage appends the value of message f, the merge of chunks (none: an
// empty message).
func (d *Protobuf) emitMessage(row parquet.Row, f *pfield, chunks []pocc, rep int) (parquet.Row, *RecordError) {
	switch f.kind {
	case pkMessage:
		m := f.msg
		m.reset()
		for i := range chunks {
			if err := d.scan(m, chunks[i].b); err != nil {
				return row, err
			}
		}
		return d.emitMsg(row, m, rep)
	case pkTimestamp, pkDuration:
		secs, nanos, err := d.secondsNanos(chunks)
		if err != nil {
			return row, err
		}
		s, ns := int64(secs), int64(int32(nanos))
		if f.kind == pkTimestamp {
			if s < minTimestampSeconds || s > maxTimestampSeconds || ns < 0 || ns > 999_999_999 {
				return row, recordErr("invalid google.protobuf.Timestamp: seconds " + strconv.FormatInt(s, 10) +
					" nanos " + strconv.FormatInt(ns, 10) + " is out of range")
			}
		} else if s < -maxDurationSeconds || s > maxDurationSeconds || ns < -999_999_999 || ns > 999_999_999 ||
			s > 0 && ns < 0 || s < 0 && ns > 0 {
			return row, recordErr("invalid google.protobuf.Duration: seconds " + strconv.FormatInt(s, 10) +
				" nanos " + strconv.FormatInt(ns, 10) + " is out of range")
		}
		// Go's division truncates toward zero: for a Timestamp (nanos ≥ 0)
		// that is the instant's floor, for a Duration its sign's way.
		us := s*1_000_000 + ns/1000
		return append(row, parquet.Int64Value(us).Level(rep, f.def, f.col)), nil
	case pkWrapper:
		// An absent value is the default, which v and b start as.
		var (
			v uint64
			b []byte
		)
		want := f.inner.wire()
		for i := range chunks {
			err := d.fields(chunks[i].b, func(num protowire.Number, typ protowire.Type, fv uint64, fb []byte) *RecordError {
				if num != 1 {
					d.recUnknown++
					return nil
				}
				if typ != want {
					return &RecordError{Field: "value", Reason: "wire type " + wireName(typ) + ", want " + wireName(want)}
				}
				v, b = fv, fb // the last value wins
				return nil
			})
			if err != nil {
				return row, err
			}
		}
		return d.emitScalar(row, f, f.inner, v, b, rep)
	case pkJSON:
		text, err := d.json.render(f.jsonName, chunks)
		if err != nil {
			return row, err
		}
		return append(row, parquet.ByteArrayValue(d.copy(text)).Level(rep, f.def, f.col)), nil
	}
	return row, recordErr("field kind " + strconv.Itoa(int(f.kind)) + " is not a message")
}

// secondsNanos reads fields 1 (seconds) and 2 (nanos) of a Timestamp or
// Duration.
func (d *Protobuf) secondsNanos(chunks []pocc) (secs, nanos uint64, err *RecordError) {
	for i := range chunks {
		err = d.fields(chunks[i].b, func(num protowire.Number, typ protowire.Type, v uint64, _ []byte) *RecordError {
			switch num {
			case 1, 2:
				if typ != protowire.VarintType {
					name := "seconds"
					if num == 2 {
						name = "nanos"
					}
					return &RecordError{Field: name, Reason: "wire type " + wireName(typ) + ", want varint"}
				}
				if num == 1 {
					secs = v
				} else {
					nanos = v
				}
			default:
				d.recUnknown++
			}
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
	}
	return secs, nanos, nil
}

// fields calls fn with each field of the message body b. Group values are
// passed as their bodies, with type StartGroupType.
func (d *Protobuf) fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, b []byte) *RecordError) *RecordError {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return wireErr(n)
		}
		b = b[n:]
		v, chunk, n := consumeValue(num, typ, b)
		if n < 0 {
			return wireErr(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, chunk); err != nil {
			return err
		}
	}
	return nil
}

// protoJSON renders google.protobuf.Struct, Value, ListValue and Any as
// JSON. It builds messages: these types hold arbitrary JSON, so a column
// of them is a JSON string, and they are rare enough on hot paths that
// protojson's cost is acceptable.
type protoJSON struct {
	resolver interface {
		protoregistry.ExtensionTypeResolver
		protoregistry.MessageTypeResolver
	}
	st  structpb.Struct
	val structpb.Value
	lv  structpb.ListValue
	an  anypb.Any
	buf bytes.Buffer
}

// render returns the JSON text of the message of type name, the merge of
// chunks; it is valid until the next call.
func (j *protoJSON) render(name protoreflect.FullName, chunks []pocc) ([]byte, *RecordError) {
	var m proto.Message
	switch name {
	case "google.protobuf.Struct":
		m = &j.st
	case "google.protobuf.Value":
		m = &j.val
	case "google.protobuf.ListValue":
		m = &j.lv
	default:
		m = &j.an
	}
	proto.Reset(m)
	for i := range chunks {
		if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(chunks[i].b, m); err != nil {
			return nil, recordErr("invalid " + string(name) + ": " + err.Error())
		}
	}
	if m == &j.val && j.val.Kind == nil {
		// An empty Value has no JSON form; "null" is the nearest.
		return []byte("null"), nil
	}
	text, err := protojson.MarshalOptions{Resolver: j.resolver}.Marshal(m)
	if err != nil {
		if m != &j.an {
			return nil, recordErr("invalid " + string(name) + ": " + err.Error())
		}
		// An Any of a type the resolver does not know: keep its bytes.
		url, _ := json.Marshal(j.an.TypeUrl)
		text = append(append(append([]byte(`{"@type":`), url...), `,"value":"`...),
			base64.StdEncoding.EncodeToString(j.an.Value)...)
		text = append(text, `"}`...)
	}
	// protojson varies its whitespace on purpose; compact it so that equal
	// values are equal strings.
	j.buf.Reset()
	if err := json.Compact(&j.buf, text); err != nil {
		return nil, recordErr("invalid " + string(name) + ": " + err.Error())
	}
	return j.buf.Bytes(), nil
}

// columnSorter orders values by column, keeping the order of each
// column's values (a stable counting sort), unless they are already so.
// It is JSON.sortByColumn's algorithm, on part of a row.
type columnSorter struct {
	counts []int // one more than the columns
	sorted parquet.Row
}

// sort orders a whole row.
func (s *columnSorter) sort(row parquet.Row) { s.sortColumns(row, 0, len(s.counts)-1) }

// sortColumns orders vals, values of the n columns from first on.
func (s *columnSorter) sortColumns(vals parquet.Row, first, n int) {
	sorted := true
	for i := 1; i < len(vals); i++ {
		if vals[i].Column() < vals[i-1].Column() {
			sorted = false
			break
		}
	}
	if sorted {
		return
	}
	counts := s.counts[:n+1]
	clear(counts)
	for _, v := range vals {
		counts[v.Column()-first+1]++
	}
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	s.sorted = append(s.sorted[:0], vals...)
	for _, v := range s.sorted {
		c := v.Column() - first
		vals[counts[c]] = v
		counts[c]++
	}
}
