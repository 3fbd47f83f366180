// Package kafka exports a stream's rows to a Kafka topic. Rows are produced
// inside Kafka transactions that also commit the consumer group's offsets
// of the records they came from, one transaction per checkpoint, so a
// consumer reading with read_committed sees every row exactly once across
// crashes.
package kafka

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

// Encoder turns rows of a layout into JSON objects keyed by column name. It
// is used by one goroutine at a time (see Clone).
// Strings are escaped by hand because the encoder runs per row and
// encoding/json would need a map or struct per row.
type Encoder struct {
	layout *schema.Layout
	key    *schema.Node
	cur    cursor
	keyBuf []byte // scratch for the text of a map key
}

// NewEncoder checks the layout can be exported and binds the key column
// (empty: no key).
func NewEncoder(l *schema.Layout, keyColumn string) (*Encoder, error) {
	e := &Encoder{layout: l, cur: newCursor(l.NumColumns)}
	for _, n := range l.Top {
		if err := exportable(n, false); err != nil {
			return nil, fmt.Errorf("column %s: %w", n.Field.Name, err)
		}
	}
	if keyColumn != "" {
		n, ok := l.ByName[keyColumn]
		if !ok || !n.Field.Type.IsPrimitive() {
			return nil, fmt.Errorf("key column %q is not a top-level primitive output column", keyColumn)
		}
		e.key = n
	}
	return e, nil
}

// exportable accepts every type a layout can hold. Lists of lists cannot
// be declared (see schema.Type), but a hand-built Type could hold one.
func exportable(n *schema.Node, inList bool) error {
	switch n.Field.Type.Kind {
	case schema.KindStruct:
		for _, c := range n.Children {
			if err := exportable(c, false); err != nil {
				return err
			}
		}
	case schema.KindList:
		if inList {
			return fmt.Errorf("nested lists cannot be exported")
		}
		return exportable(n.Children[0], true)
	case schema.KindMap:
		if inList {
			return fmt.Errorf("maps in lists or map values cannot be exported")
		}
		return exportable(n.Children[1], true)
	}
	return nil
}

// cursor reads the values of one row column by column. A row holds its
// values in column order, each leaf column's values contiguous and in
// order, so a position per column is all the state a walk of nested
// structs, lists and maps needs: each node takes from each leaf below it
// the values that belong to it, and members of a struct may be visited in
// any order (Dremel's record assembly, one column at a time).
//
// Invariants the walks rely on: a null or empty struct, list or map has
// exactly one value in each of its leaves; every further element of a list
// or entry of a map starts with a value of repetition level Node.Rep in its
// first leaf. Reads past a column's values, or of a value of another
// column, return the null Value without moving, so a malformed row yields
// nulls (or a RowError) rather than a panic or an endless loop.
type cursor struct {
	pos, end []int
}

func newCursor(columns int) cursor {
	return cursor{pos: make([]int, columns), end: make([]int, columns)}
}

func (c *cursor) clone() cursor {
	return cursor{pos: slices.Clone(c.pos), end: slices.Clone(c.end)}
}

// reset positions the cursor on the first value of each column of row.
func (c *cursor) reset(row parquet.Row) {
	clear(c.end) // end 0: no values
	for i, v := range row {
		col := v.Column()
		if col < 0 || col >= len(c.pos) {
			continue
		}
		if c.end[col] == 0 {
			c.pos[col] = i
		}
		c.end[col] = i + 1
	}
}

// peek returns the current value of col, or the null Value when there is
// none.
func (c *cursor) peek(row parquet.Row, col int) parquet.Value {
	if p := c.pos[col]; p < c.end[col] && row[p].Column() == col {
		return row[p]
	}
	return parquet.Value{}
}

// next returns the current value of col and moves past it.
func (c *cursor) next(row parquet.Row, col int) parquet.Value {
	if p := c.pos[col]; p < c.end[col] && row[p].Column() == col {
		c.pos[col]++
		return row[p]
	}
	return parquet.Value{}
}

// skip moves past one value of each leaf: those of a null or empty node.
func (c *cursor) skip(row parquet.Row, leaves []int) {
	for _, col := range leaves {
		c.next(row, col)
	}
}

// repeats reports whether the current value of col starts another element
// of the list or map whose elements have repetition level rep.
func (c *cursor) repeats(row parquet.Row, col, rep int) bool {
	p := c.pos[col]
	return p < c.end[col] && row[p].Column() == col && row[p].RepetitionLevel() == rep
}

// AppendJSON appends the row as a JSON object, columns in declaration order.
func (e *Encoder) AppendJSON(b []byte, row parquet.Row) []byte {
	e.cur.reset(row)
	b = append(b, '{')
	for i, f := range e.layout.Schema.Fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, f.Name)
		b = append(b, ':')
		b = e.appendNode(b, row, e.layout.ByName[f.Name])
	}
	return append(b, '}')
}

// Clone returns an encoder for another goroutine: an Encoder keeps per-row
// scratch state and is not safe for concurrent use.
func (e *Encoder) Clone() *Encoder {
	c := *e
	c.cur = e.cur.clone()
	c.keyBuf = nil
	return &c
}

// Key returns the key column's value as text, or nil.
func (e *Encoder) Key(row parquet.Row) []byte {
	if e.key == nil {
		return nil
	}
	e.cur.reset(row)
	v := e.cur.peek(row, e.key.Column)
	if v.IsNull() {
		return nil
	}
	return appendText(nil, e.key.Field.Type, v)
}

// appendText appends v as unquoted, unescaped text: a string or binary as
// its bytes, anything else as in JSON without the quotes.
func appendText(b []byte, t schema.Type, v parquet.Value) []byte {
	if t.Kind == schema.KindString || t.Kind == schema.KindBinary {
		return append(b, v.ByteArray()...)
	}
	start := len(b)
	b = appendPrimitive(b, t, v)
	if len(b)-start > 1 && b[start] == '"' {
		copy(b[start:], b[start+1:len(b)-1])
		b = b[:len(b)-2]
	}
	return b
}

// appendNode appends the value of n, taking its values from the cursor.
func (e *Encoder) appendNode(b []byte, row parquet.Row, n *schema.Node) []byte {
	switch n.Field.Type.Kind {
	case schema.KindStruct:
		if e.cur.peek(row, n.Leaves[0]).DefinitionLevel() < n.Def {
			e.cur.skip(row, n.Leaves)
			return append(b, "null"...)
		}
		b = append(b, '{')
		for i, c := range n.Children {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, c.Field.Name)
			b = append(b, ':')
			b = e.appendNode(b, row, c)
		}
		return append(b, '}')
	case schema.KindList, schema.KindMap:
		first := n.Leaves[0]
		switch def := e.cur.peek(row, first).DefinitionLevel(); {
		case def < n.Def:
			e.cur.skip(row, n.Leaves)
			return append(b, "null"...)
		case def == n.Def: // empty
			e.cur.skip(row, n.Leaves)
			if n.Field.Type.Kind == schema.KindMap {
				return append(b, "{}"...)
			}
			return append(b, "[]"...)
		}
		if n.Field.Type.Kind == schema.KindMap {
			return e.appendMap(b, row, n)
		}
		b = append(b, '[')
		for i := 0; i == 0 || e.cur.repeats(row, first, n.Rep); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.appendNode(b, row, n.Children[0])
		}
		return append(b, ']')
	}
	v := e.cur.next(row, n.Column)
	if v.IsNull() {
		return append(b, "null"...)
	}
	return appendPrimitive(b, n.Field.Type, v)
}

// appendMap appends the entries of a non-empty map as an object, keys
// rendered as text (see Key), in row order.
func (e *Encoder) appendMap(b []byte, row parquet.Row, n *schema.Node) []byte {
	key, value := n.Children[0], n.Children[1]
	b = append(b, '{')
	for i := 0; i == 0 || e.cur.repeats(row, key.Column, n.Rep); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		k := e.cur.next(row, key.Column)
		if k.IsNull() { // keys are required; only a malformed row has none
			b = append(b, `""`...)
		} else {
			e.keyBuf = appendText(e.keyBuf[:0], key.Field.Type, k)
			b = appendString(b, string(e.keyBuf))
		}
		b = append(b, ':')
		b = e.appendNode(b, row, value)
	}
	return append(b, '}')
}

func appendPrimitive(b []byte, t schema.Type, v parquet.Value) []byte {
	switch t.Kind {
	case schema.KindString:
		return appendString(b, string(v.ByteArray()))
	case schema.KindBinary:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v.ByteArray())
		return append(b, '"')
	case schema.KindBool:
		return strconv.AppendBool(b, v.Boolean())
	case schema.KindInt32:
		return strconv.AppendInt(b, int64(v.Int32()), 10)
	case schema.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case schema.KindFloat32:
		return appendFloat(b, float64(v.Float()), 32)
	case schema.KindFloat64:
		return appendFloat(b, v.Double(), 64)
	case schema.KindDate:
		b = append(b, '"')
		b = time.Unix(int64(v.Int32())*86400, 0).UTC().AppendFormat(b, "2006-01-02")
		return append(b, '"')
	case schema.KindTimestamp, schema.KindTimestampTZ:
		b = append(b, '"')
		b = time.UnixMicro(v.Int64()).UTC().AppendFormat(b, "2006-01-02T15:04:05.999999Z07:00")
		return append(b, '"')
	case schema.KindDecimal:
		return appendDecimal(b, v, t.Scale)
	}
	return append(b, "null"...)
}

func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// appendDecimal writes the exact decimal as a JSON number.
func appendDecimal(b []byte, v parquet.Value, scale int) []byte {
	var digits string
	switch v.Kind() {
	case parquet.Int32:
		digits = strconv.FormatInt(int64(v.Int32()), 10)
	case parquet.Int64:
		digits = strconv.FormatInt(v.Int64(), 10)
	default:
		raw := v.ByteArray()
		n := new(big.Int).SetBytes(raw)
		if len(raw) > 0 && raw[0]&0x80 != 0 {
			n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(raw))))
		}
		digits = n.String()
	}
	neg := digits[0] == '-'
	if neg {
		digits = digits[1:]
		b = append(b, '-')
	}
	if scale == 0 {
		return append(b, digits...)
	}
	for len(digits) <= scale {
		digits = "0" + digits
	}
	b = append(b, digits[:len(digits)-scale]...)
	b = append(b, '.')
	return append(b, digits[len(digits)-scale:]...)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
