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
	starts []int // per leaf column: first value index in the current row
	ends   []int
}

// NewEncoder checks the layout can be exported and binds the key column
// (empty: no key).
func NewEncoder(l *schema.Layout, keyColumn string) (*Encoder, error) {
	e := &Encoder{layout: l, starts: make([]int, l.NumColumns), ends: make([]int, l.NumColumns)}
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

// exportable accepts primitives, structs and lists of primitives; deeper
// repetition (lists of structs) is not exported yet.
func exportable(n *schema.Node, inList bool) error {
	switch n.Field.Type.Kind {
	case schema.KindStruct:
		if inList {
			return fmt.Errorf("lists of structs cannot be exported yet")
		}
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
		return fmt.Errorf("maps cannot be exported yet")
	}
	return nil
}

func (e *Encoder) index(row parquet.Row) {
	for i := range e.starts {
		e.starts[i], e.ends[i] = -1, -1
	}
	for i, v := range row {
		c := v.Column()
		if c < 0 || c >= len(e.starts) {
			continue
		}
		if e.starts[c] < 0 {
			e.starts[c] = i
		}
		e.ends[c] = i + 1
	}
}

// AppendJSON appends the row as a JSON object, columns in declaration order.
func (e *Encoder) AppendJSON(b []byte, row parquet.Row) []byte {
	e.index(row)
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
	c.starts, c.ends = make([]int, len(e.starts)), make([]int, len(e.ends))
	return &c
}

// Key returns the key column's value as text, or nil.
func (e *Encoder) Key(row parquet.Row) []byte {
	if e.key == nil {
		return nil
	}
	e.index(row)
	v := e.value(row, e.key.Column)
	if v.IsNull() {
		return nil
	}
	if k := e.key.Field.Type.Kind; k == schema.KindString || k == schema.KindBinary {
		return append([]byte(nil), v.ByteArray()...)
	}
	b := appendPrimitive(nil, e.key.Field.Type, v)
	if len(b) > 1 && b[0] == '"' {
		b = b[1 : len(b)-1]
	}
	return b
}

func (e *Encoder) value(row parquet.Row, col int) parquet.Value {
	if s := e.starts[col]; s >= 0 {
		return row[s]
	}
	return parquet.Value{}
}

func (e *Encoder) appendNode(b []byte, row parquet.Row, n *schema.Node) []byte {
	switch n.Field.Type.Kind {
	case schema.KindStruct:
		if v := e.value(row, n.Leaves[0]); v.DefinitionLevel() < n.Def {
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
	case schema.KindList:
		elem := n.Children[0]
		col := elem.Column
		s, end := e.starts[col], e.ends[col]
		if s < 0 || row[s].DefinitionLevel() < n.Def {
			return append(b, "null"...)
		}
		b = append(b, '[')
		if row[s].DefinitionLevel() > n.Def { // at least one element
			for i := s; i < end; i++ {
				if i > s {
					b = append(b, ',')
				}
				if v := row[i]; v.DefinitionLevel() < elem.Def {
					b = append(b, "null"...)
				} else {
					b = appendPrimitive(b, elem.Field.Type, v)
				}
			}
		}
		return append(b, ']')
	}
	v := e.value(row, n.Column)
	if v.IsNull() {
		return append(b, "null"...)
	}
	return appendPrimitive(b, n.Field.Type, v)
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
