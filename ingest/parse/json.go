// Package parse decodes source records into Parquet rows of a stream's schema.
package parse

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/sluicehq/sluice/ingest/schema"
	"github.com/valyala/fastjson"
)

// Options configure a decoder.
type Options struct {
	// EventTime names the top-level column holding the record's event time. It must be a timestamp, timestamptz, int64 (epoch milliseconds) or date column.
	// Empty: records have no event time of their own (change events, whose
	// time is their envelope's), and Decode reports 0.
	EventTime string
	// MaxRecordBytes rejects larger records before parsing (0 = no limit).
	MaxRecordBytes int
}

// JSON decodes JSON objects into rows. It is not safe for concurrent use; use
// one per goroutine.
//
// Conversions are strict: a value that does not fit its column exactly (a
// fraction in an integer, a digit beyond a decimal's scale, a string that is
// not a timestamp) fails the record rather than being rounded or dropped,
// because a dead-lettered record can be fixed and replayed while a silently
// altered one cannot. Unknown keys are ignored so producers can add fields
// before the schema does.
type JSON struct {
	parser fastjson.Parser
	top    object // the record's columns
	flat   bool
	// event is the event-time column and eventAt its position in top.
	event   *field
	eventAt int
	// sort is set when a list's elements have more than one leaf column:
	// they are decoded one after another, interleaving the columns, and a
	// row must hold each column's values together, in column order.
	sort     bool
	maxBytes int
	arena    arena
	// Scratch for sorting rows by column, and for the text of numbers.
	sorted parquet.Row
	counts []int
	num    []byte
}

// field is how one node of the schema is decoded: a column, a struct member
// or a list element.
type field struct {
	name     string
	typ      schema.Type
	required bool
	col      int // leaf column index (primitives)
	def      int // definition level when present and not null
	nullDef  int // definition level when null: its parent's
	rep      int // repetition level of a list's later elements
	leaves   []int
	elem     *field  // list element
	obj      *object // struct members
	// flba is the width of a decimal stored as fixed-length bytes, else 0.
	flba int
}

// object finds the fields of a struct among the keys of a JSON object.
type object struct {
	fields []*field // in column order
	index  map[string]int
	// seen[k] is the key at position k of the last object decoded and the
	// field it names (-1: none). Producers almost always write the same keys
	// in the same order, so comparing with the key seen at the same place
	// usually finds the field, or that the key is unknown, without hashing
	// the key. Unknown keys are remembered too: they are often the majority.
	seen []seenKey
	// slots holds the value of each field in the object being decoded. A
	// struct is never nested in itself, so one set of slots per struct
	// suffices even for lists of structs: each element is done before the
	// next is looked at.
	slots []*fastjson.Value
}

type seenKey struct {
	key   []byte // reused, so that a change of key order allocates nothing once warm
	field int
}

// maxSeenKeys bounds the keys an object remembers; keys after these are
// hashed every time.
const maxSeenKeys = 256

// NewJSON returns a decoder of records into rows of l. It reports every
// problem with opts at once.
func NewJSON(l *schema.Layout, opts Options) (*JSON, error) {
	if l == nil || l.Parquet == nil {
		return nil, errors.New("parse: no schema layout")
	}
	var errs []error
	d := &JSON{flat: l.Flat, maxBytes: opts.MaxRecordBytes}
	if opts.MaxRecordBytes < 0 {
		errs = append(errs, fmt.Errorf("max_record_bytes: %d is negative", opts.MaxRecordBytes))
	}
	d.top = newObject(l.Top)
	d.eventAt = -1
	for i, f := range d.top.fields {
		if f.name == opts.EventTime {
			d.event, d.eventAt = f, i
		}
	}
	switch {
	case opts.EventTime == "":
	case d.event == nil:
		errs = append(errs, fmt.Errorf("event_time: column %q is not in the schema", opts.EventTime))
	default:
		switch d.event.typ.Kind {
		case schema.KindTimestamp, schema.KindTimestampTZ, schema.KindInt64, schema.KindDate:
		default:
			errs = append(errs, fmt.Errorf("event_time: column %q is %s, not a timestamp, timestamptz, int64 or date", opts.EventTime, d.event.typ))
		}
	}
	if err := d.checkLayout(l); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, f := range d.top.fields {
		d.sort = d.sort || interleaves(f)
	}
	d.counts = make([]int, l.NumColumns+1)
	return d, nil
}

// interleaves reports whether the values of f can come out of shredding
// in other than column order: those of a list whose elements have several
// leaves, decoded one element after another.
func interleaves(f *field) bool {
	switch f.typ.Kind {
	case schema.KindList:
		return len(f.leaves) > 1 || interleaves(f.elem)
	case schema.KindStruct:
		for _, c := range f.obj.fields {
			if interleaves(c) {
				return true
			}
		}
	}
	return false
}

func newObject(nodes []*schema.Node) object {
	o := object{index: make(map[string]int, len(nodes))}
	for i, n := range nodes {
		o.fields = append(o.fields, newField(n))
		o.index[n.Field.Name] = i
	}
	o.slots = make([]*fastjson.Value, len(nodes))
	return o
}

func newField(n *schema.Node) *field {
	f := &field{
		name:     n.Field.Name,
		typ:      n.Field.Type,
		required: n.Field.Required,
		col:      n.Column,
		def:      n.Def,
		nullDef:  n.Def,
		rep:      n.Rep,
		leaves:   n.Leaves,
	}
	if !f.required {
		f.nullDef--
	}
	switch f.typ.Kind {
	case schema.KindList:
		if len(n.Children) == 1 { // else checkLayout reports it
			f.elem = newField(n.Children[0])
		}
	case schema.KindStruct:
		o := newObject(n.Children)
		f.obj = &o
	case schema.KindDecimal:
		if f.typ.Precision > 18 {
			f.flba = schema.DecimalBytes(f.typ.Precision)
		}
	}
	return f
}

// checkLayout verifies that the values Decode will emit are ones parquet-go
// accepts for l: levels in range, and every leaf where the Parquet schema has
// it, with its physical type and levels. parquet-go panics or writes a
// corrupt file on a row that does not match, so a mismatch must stop the
// stream here rather than surface record by record.
//
// Decode emits leaves in the order it walks the fields, and only sorts rows
// whose lists interleave columns, so the walk must meet the leaves in column
// order, each exactly once.
func (d *JSON) checkLayout(l *schema.Layout) error {
	cols := l.Parquet.Columns()
	if len(cols) != l.NumColumns || l.NumColumns-1 > parquet.MaxColumnIndex {
		return fmt.Errorf("parse: layout has %d columns, parquet schema %d", l.NumColumns, len(cols))
	}
	next := 0 // the column the walk should meet next
	var errs []error
	var check func(f *field, path string, rep int)
	check = func(f *field, path string, rep int) {
		if f.def > parquet.MaxDefinitionLevel || f.rep > parquet.MaxRepetitionLevel || f.nullDef < 0 {
			errs = append(errs, fmt.Errorf("parse: column %s nests too deeply", path))
			return
		}
		switch f.typ.Kind {
		case schema.KindList:
			if f.elem == nil {
				errs = append(errs, fmt.Errorf("parse: list %s has no element", path))
				return
			}
			check(f.elem, path+"[]", f.rep)
			return
		case schema.KindStruct:
			for _, c := range f.obj.fields {
				check(c, path+"."+c.name, rep)
			}
			return
		}
		kind, length := physical(f)
		if err := checkLeaf(l, cols, &next, path, f.col, kind, length, f.def, rep); err != nil {
			errs = append(errs, err)
		}
	}
	for i, f := range d.top.fields {
		check(f, f.name, 0)
		if l.Flat && (f.col != i || !f.typ.IsPrimitive()) {
			errs = append(errs, fmt.Errorf("parse: flat layout has column %s at %d", f.name, i))
		}
	}
	if len(errs) == 0 && next != len(cols) {
		errs = append(errs, fmt.Errorf("parse: layout covers %d of %d parquet columns", next, len(cols)))
	}
	return errors.Join(errs...)
}

// checkLeaf verifies that a decoder's next leaf, at column col with the given
// physical type and levels, is the layout's next Parquet column. Decoders
// walk their leaves in column order; next counts the columns met.
func checkLeaf(l *schema.Layout, cols [][]string, next *int, path string, col int, kind parquet.Kind, length, def, rep int) error {
	if col != *next || col >= len(cols) {
		return fmt.Errorf("parse: column %s is leaf %d, want %d", path, col, *next)
	}
	*next++
	leaf, _ := l.Parquet.Lookup(cols[col]...)
	t := leaf.Node.Type()
	if t.Kind() != kind || kind == parquet.FixedLenByteArray && t.Length() != length ||
		leaf.MaxDefinitionLevel != def || leaf.MaxRepetitionLevel != rep {
		return fmt.Errorf("parse: column %s: layout has %s def %d rep %d, parquet schema %s def %d rep %d",
			path, kind, def, rep, t.Kind(), leaf.MaxDefinitionLevel, leaf.MaxRepetitionLevel)
	}
	return nil
}

// physical is the Parquet physical type of the values decoded for a leaf.
func physical(f *field) (parquet.Kind, int) {
	switch f.typ.Kind {
	case schema.KindBool:
		return parquet.Boolean, 0
	case schema.KindInt32, schema.KindDate:
		return parquet.Int32, 0
	case schema.KindInt64, schema.KindTimestamp, schema.KindTimestampTZ:
		return parquet.Int64, 0
	case schema.KindFloat32:
		return parquet.Float, 0
	case schema.KindFloat64:
		return parquet.Double, 0
	case schema.KindDecimal:
		switch {
		case f.typ.Precision <= 9:
			return parquet.Int32, 0
		case f.typ.Precision <= 18:
			return parquet.Int64, 0
		}
		return parquet.FixedLenByteArray, f.flba
	}
	return parquet.ByteArray, 0
}

// Decode appends one record's values to row[:0] in Parquet row order and returns the row and the event time in microseconds since the Unix epoch.
// Byte slices in the row (strings, binary, decimals) stay valid until Reset.
//
// Every error it returns is a *RecordError.
func (d *JSON) Decode(row parquet.Row, data []byte) (parquet.Row, int64, error) {
	if d.maxBytes > 0 && len(data) > d.maxBytes {
		return row[:0], 0, recordErr("record of " + strconv.Itoa(len(data)) + " bytes exceeds max_record_bytes " + strconv.Itoa(d.maxBytes))
	}
	v, err := d.parser.ParseBytes(data)
	if err != nil {
		return row[:0], 0, recordErr(err.Error())
	}
	if v.Type() != fastjson.TypeObject {
		return row[:0], 0, recordErr("record is not a JSON object")
	}
	obj, _ := v.Object()
	if dup := d.top.fill(obj); dup >= 0 {
		return row[:0], 0, &RecordError{Field: d.top.fields[dup].name, Reason: "duplicate key"}
	}
	// Checked first so that a record without an event time is reported as
	// such even when something else is wrong with it too.
	if d.eventAt >= 0 {
		if ev := d.top.slots[d.eventAt]; ev == nil || ev.Type() == fastjson.TypeNull {
			return row[:0], 0, &RecordError{Field: d.event.name, Reason: "missing event time"}
		}
	}
	mark := d.arena.mark()
	var (
		event parquet.Value
		rerr  *RecordError
	)
	if d.flat {
		row, rerr = d.decodeFlat(row)
		if rerr == nil && d.eventAt >= 0 {
			event = row[d.eventAt]
		}
	} else {
		row, event, rerr = d.decodeNested(row)
	}
	if rerr != nil {
		d.arena.rollback(mark)
		return row[:0], 0, rerr
	}
	if d.eventAt < 0 {
		return row, 0, nil
	}
	us, rerr := d.eventMicros(event)
	if rerr != nil {
		d.arena.rollback(mark)
		return row[:0], 0, rerr
	}
	return row, us, nil
}

// Reset releases the memory backing rows returned since the last Reset (call after the rows were written).
func (d *JSON) Reset() { d.arena.reset() }

// fill finds the fields of o among the keys of obj, leaving nil in the slot
// of a field that is missing. It returns the position of a field whose key
// appears twice, or -1: a JSON object with a repeated key has no agreed
// meaning (decoders keep the first, the last or fail), so rather than pick
// one silently the record is rejected.
//
// Visiting the keys once is what lets a repeated key be seen; obj.Get per
// field cannot. It costs little: measured against Get per field, it is ~2%
// faster on a 12-key click event in column order, and ~10-15% slower (of
// the whole Decode) when 20 to 100 unknown keys are shuffled in, because
// fastjson's Visit unescapes each key and makes a call per key.
func (o *object) fill(obj *fastjson.Object) (dup int) {
	clear(o.slots)
	dup, k := -1, 0
	obj.Visit(func(key []byte, v *fastjson.Value) {
		i := -1
		if k < len(o.seen) && string(o.seen[k].key) == string(key) {
			i = o.seen[k].field
		} else {
			if j, ok := o.index[string(key)]; ok {
				i = j
			}
			if k < maxSeenKeys {
				if k == len(o.seen) {
					o.seen = append(o.seen, seenKey{})
				}
				o.seen[k] = seenKey{append(o.seen[k].key[:0], key...), i}
			}
		}
		k++
		if i < 0 {
			return
		}
		if o.slots[i] != nil && dup < 0 {
			dup = i
		}
		o.slots[i] = v
	})
	return dup
}

// decodeFlat decodes a record of top-level primitives, the common case, into
// one value per column at the column's index.
func (d *JSON) decodeFlat(row parquet.Row) (parquet.Row, *RecordError) {
	n := len(d.top.fields)
	if cap(row) < n {
		row = make(parquet.Row, n)
	}
	row = row[:n]
	for i, f := range d.top.fields {
		v := d.top.slots[i]
		if v == nil || v.Type() == fastjson.TypeNull {
			if f.required {
				return row, &RecordError{Field: f.name, Reason: "missing required field"}
			}
			row[i] = parquet.NullValue().Level(0, f.nullDef, i)
			continue
		}
		if err := d.leaf(&row[i], f, v, 0); err != nil {
			return row, err.in(f.name)
		}
	}
	return row, nil
}

// decodeNested decodes a record with structs or lists by Dremel shredding,
// and returns the value of the event-time column with the row.
func (d *JSON) decodeNested(row parquet.Row) (parquet.Row, parquet.Value, *RecordError) {
	row = row[:0]
	var event parquet.Value
	for i, f := range d.top.fields {
		at := len(row)
		var err *RecordError
		row, err = d.shred(row, f, d.top.slots[i], 0)
		if err != nil {
			return row, event, err.in(f.name)
		}
		if i == d.eventAt {
			event = row[at] // a top-level primitive has exactly one value
		}
	}
	if d.sort {
		d.sortByColumn(row)
	}
	return row, event, nil
}

// shred appends the values of v, the JSON value of f (nil if absent), with
// repetition level rep for the first value of each column.
func (d *JSON) shred(row parquet.Row, f *field, v *fastjson.Value, rep int) (parquet.Row, *RecordError) {
	if v == nil || v.Type() == fastjson.TypeNull {
		if f.required {
			return row, recordErr("missing required field")
		}
		for _, col := range f.leaves {
			row = append(row, parquet.NullValue().Level(rep, f.nullDef, col))
		}
		return row, nil
	}
	switch f.typ.Kind {
	case schema.KindStruct:
		if v.Type() != fastjson.TypeObject {
			return row, typeErr("an object", v)
		}
		obj, _ := v.Object()
		o := f.obj
		if dup := o.fill(obj); dup >= 0 {
			return row, recordErr("duplicate key").in(o.fields[dup].name)
		}
		for i, c := range o.fields {
			var err *RecordError
			// Members of one struct share the incoming repetition level:
			// each is the first value of its own column in this element.
			if row, err = d.shred(row, c, o.slots[i], rep); err != nil {
				return row, err.in(c.name)
			}
		}
		return row, nil
	case schema.KindList:
		if v.Type() != fastjson.TypeArray {
			return row, typeErr("an array", v)
		}
		elems, _ := v.Array()
		if len(elems) == 0 {
			for _, col := range f.leaves {
				row = append(row, parquet.NullValue().Level(rep, f.def, col))
			}
			return row, nil
		}
		for i, e := range elems {
			r := rep
			if i > 0 {
				r = f.rep
			}
			var err *RecordError
			if row, err = d.shred(row, f.elem, e, r); err != nil {
				return row, err.in("[" + strconv.Itoa(i) + "]")
			}
		}
		return row, nil
	}
	row = append(row, parquet.Value{})
	return row, d.leaf(&row[len(row)-1], f, v, rep)
}

// sortByColumn orders the values of row by column, keeping the order of
// each column's values (a stable counting sort), unless it is already so.
func (d *JSON) sortByColumn(row parquet.Row) {
	sorted := true
	for i := 1; i < len(row); i++ {
		if row[i].Column() < row[i-1].Column() {
			sorted = false
			break
		}
	}
	if sorted {
		return
	}
	clear(d.counts)
	for _, v := range row {
		d.counts[v.Column()+1]++
	}
	for i := 1; i < len(d.counts); i++ {
		d.counts[i] += d.counts[i-1]
	}
	d.sorted = append(d.sorted[:0], row...)
	for _, v := range d.sorted {
		c := v.Column()
		row[d.counts[c]] = v
		d.counts[c]++
	}
}

// leaf converts the JSON value v, not null, of primitive field f, and
// stores it at dst with repetition level rep. Storing rather than returning
// the value saves staging it on the stack once more, which costs more than
// the conversion for small values (parquet.Value is built from byte fields
// and copied in 16-byte words, defeating store forwarding).
func (d *JSON) leaf(dst *parquet.Value, f *field, v *fastjson.Value, rep int) *RecordError {
	var val parquet.Value
	t := v.Type()
	switch f.typ.Kind {
	case schema.KindString:
		if t != fastjson.TypeString {
			return typeErr("a string", v)
		}
		s, _ := v.StringBytes()
		if !utf8.Valid(s) {
			return recordErr("invalid UTF-8")
		}
		b := d.arena.alloc(len(s))
		copy(b, s)
		val = parquet.ByteArrayValue(b)

	case schema.KindBool:
		switch t {
		case fastjson.TypeTrue:
			val = parquet.BooleanValue(true)
		case fastjson.TypeFalse:
			val = parquet.BooleanValue(false)
		default:
			return typeErr("a bool", v)
		}

	case schema.KindInt32, schema.KindInt64:
		r := int64Range
		if f.typ.Kind == schema.KindInt32 {
			r = int32Range
		}
		var (
			n   int64
			err *RecordError
		)
		switch t {
		case fastjson.TypeNumber:
			n, err = parseInt(d.text(v), r)
		case fastjson.TypeString:
			n, err = parseIntString(d.text(v), r)
		default:
			return typeErr("an integer", v)
		}
		if err != nil {
			return err
		}
		if f.typ.Kind == schema.KindInt32 {
			val = parquet.Int32Value(int32(n))
		} else {
			val = parquet.Int64Value(n)
		}

	case schema.KindFloat32, schema.KindFloat64:
		x, err := d.parseFloat(v, f.typ.Kind == schema.KindFloat32)
		if err != nil {
			return err
		}
		if f.typ.Kind == schema.KindFloat32 {
			val = parquet.FloatValue(float32(x))
		} else {
			val = parquet.DoubleValue(x)
		}

	case schema.KindDecimal:
		if t != fastjson.TypeNumber && t != fastjson.TypeString {
			return typeErr("a decimal number or string", v)
		}
		dec, err := parseDecimal(d.text(v), t == fastjson.TypeNumber, f.typ.Precision, f.typ.Scale)
		if err != nil {
			return err
		}
		switch {
		case f.flba > 0:
			b := d.arena.alloc(f.flba)
			dec.putBigEndian(b)
			val = parquet.FixedLenByteArrayValue(b)
		case f.typ.Precision <= 9:
			val = parquet.Int32Value(int32(dec.lo))
		default:
			val = parquet.Int64Value(int64(dec.lo))
		}

	case schema.KindDate:
		var days int64
		switch t {
		case fastjson.TypeString:
			var ok bool
			if days, ok = parseDate(d.text(v)); !ok {
				return recordErr("invalid date " + quote(d.text(v)) + ", want YYYY-MM-DD")
			}
		case fastjson.TypeNumber:
			var err *RecordError
			if days, err = parseInt(d.text(v), int32Range); err != nil {
				return err
			}
		default:
			return typeErr("a date string or integer", v)
		}
		val = parquet.Int32Value(int32(days))

	case schema.KindTimestamp, schema.KindTimestampTZ:
		var us int64
		switch t {
		case fastjson.TypeString:
			var ok bool
			if us, ok = parseTimestamp(d.text(v)); !ok {
				return recordErr("invalid timestamp " + quote(d.text(v)) + ", want RFC 3339")
			}
		case fastjson.TypeNumber:
			var err *RecordError
			if us, err = parseInt(d.text(v), int64Range); err != nil {
				return err
			}
			if f.typ.Unit == schema.Millis {
				if us > math.MaxInt64/1000 || us < math.MinInt64/1000 {
					return recordErr(clip(d.text(v)) + " ms overflows a timestamp")
				}
				us *= 1000
			}
		default:
			return typeErr("a timestamp string or integer", v)
		}
		val = parquet.Int64Value(us)

	case schema.KindBinary:
		if t != fastjson.TypeString {
			return typeErr("a base64 string", v)
		}
		s, _ := v.StringBytes()
		b, ok := decodeBase64(s, &d.arena)
		if !ok {
			return recordErr("invalid base64")
		}
		val = parquet.ByteArrayValue(b)

	default:
		// Unreachable: NewJSON accepts only layouts of the kinds above.
		return recordErr("column type " + f.typ.String() + " is not supported")
	}
	*dst = val.Level(rep, f.def, f.col)
	return nil
}

// text returns the contents of a JSON string or the text of a JSON number.
// It copies nothing but the number, so it must not be kept: strings point
// into the parser's buffer, which the next record overwrites, and numbers
// into scratch the next call overwrites.
func (d *JSON) text(v *fastjson.Value) string {
	if v.Type() == fastjson.TypeString {
		b, _ := v.StringBytes()
		return unsafe.String(unsafe.SliceData(b), len(b))
	}
	// fastjson keeps a number's text but only lets it out this way.
	d.num = v.MarshalTo(d.num[:0])
	return unsafe.String(unsafe.SliceData(d.num), len(d.num))
}

// parseFloat converts a JSON number, or one of the strings "NaN", "Infinity"
// and "-Infinity" (JSON has no literals for them; protobuf's JSON mapping
// writes them so).
func (d *JSON) parseFloat(v *fastjson.Value, single bool) (float64, *RecordError) {
	size, name := 64, "float64"
	if single {
		size, name = 32, "float32"
	}
	switch v.Type() {
	case fastjson.TypeNumber:
		s := d.text(v)
		if _, ok := splitNumber(s, true); !ok {
			return 0, recordErr("invalid number " + clip(s))
		}
		x, err := strconv.ParseFloat(s, size)
		if err != nil { // only ErrRange is left: the syntax was checked
			return 0, recordErr(clip(s) + " overflows " + name)
		}
		return x, nil
	case fastjson.TypeString:
		switch s := d.text(v); s {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		default:
			return 0, recordErr("invalid number " + quote(s) + `, want a JSON number, "NaN", "Infinity" or "-Infinity"`)
		}
	}
	return 0, typeErr("a number", v)
}

// eventMicros converts the event-time column's value to microseconds since
// the epoch.
func (d *JSON) eventMicros(v parquet.Value) (int64, *RecordError) {
	switch d.event.typ.Kind {
	case schema.KindInt64: // epoch milliseconds
		ms := v.Int64()
		if ms > math.MaxInt64/1000 || ms < math.MinInt64/1000 {
			return 0, &RecordError{Field: d.event.name, Reason: "event time " + strconv.FormatInt(ms, 10) + " ms is out of range"}
		}
		return ms * 1000, nil
	case schema.KindDate:
		days := int64(v.Int32())
		if days > maxEventDays || days < -maxEventDays {
			return 0, &RecordError{Field: d.event.name, Reason: "event time " + strconv.FormatInt(days, 10) + " days is out of range"}
		}
		return days * microsPerDay, nil
	}
	return v.Int64(), nil
}
