package parquet

import (
	"errors"
	"fmt"

	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

// ErrMalformedRow is returned by WriteRows for a row that does not fit the
// layout. It is a bug in the code that built the row, not bad input; the
// batch is rejected whole and the file stays usable.
var ErrMalformedRow = errors.New("row does not fit the layout")

// rowShape checks rows against a layout before parquet-go sees them:
// parquet-go trusts its input, and a value missing from one column shifts
// every later row of that column, which corrupts the file without an error.
type rowShape []columnShape

type columnShape struct {
	kind   parquet.Kind
	width  int // fixed-length byte arrays
	maxRep int
	maxDef int
}

func newRowShape(l *schema.Layout) rowShape {
	paths := l.Parquet.Columns()
	s := make(rowShape, len(paths))
	for i, p := range paths {
		leaf, _ := l.Parquet.Lookup(p...)
		t := leaf.Node.Type()
		s[i] = columnShape{kind: t.Kind(), maxRep: leaf.MaxRepetitionLevel, maxDef: leaf.MaxDefinitionLevel}
		if t.Kind() == parquet.FixedLenByteArray {
			s[i].width = t.Length()
		}
	}
	return s
}

// check verifies that row holds the values of every column in column
// order, one per column outside lists, with levels and kinds that fit.
func (s rowShape) check(row parquet.Row) error {
	// Fast path for one value per column, every flat row: the same rules
	// as checkSlow, which explains what it finds.
	if len(row) == len(s) {
		ok := true
		for i := range row {
			v, cs := &row[i], &s[i]
			def := v.DefinitionLevel()
			if v.Column() != i || v.RepetitionLevel() != 0 {
				ok = false
				break
			}
			if v.IsNull() {
				if def >= cs.maxDef {
					ok = false
					break
				}
				continue
			}
			if def != cs.maxDef || v.Kind() != cs.kind || cs.width > 0 && len(v.ByteArray()) != cs.width {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	return s.checkSlow(row)
}

func (s rowShape) checkSlow(row parquet.Row) error {
	col := 0
	for i := 0; i < len(row); col++ {
		c := row[i].Column()
		if c != col {
			if c < col {
				return fmt.Errorf("value %d is for column %d after column %d", i, c, col-1)
			}
			return fmt.Errorf("no value for column %d", col)
		}
		cs := &s[c]
		if err := cs.check(row[i], true); err != nil {
			return fmt.Errorf("value %d (column %d): %w", i, c, err)
		}
		for i++; i < len(row) && row[i].Column() == c; i++ {
			if cs.maxRep == 0 {
				return fmt.Errorf("column %d is not repeated but has several values", c)
			}
			if err := cs.check(row[i], false); err != nil {
				return fmt.Errorf("value %d (column %d): %w", i, c, err)
			}
		}
	}
	if col != len(s) {
		return fmt.Errorf("no value for column %d", col)
	}
	return nil
}

func (cs *columnShape) check(v parquet.Value, first bool) error {
	rep, def := v.RepetitionLevel(), v.DefinitionLevel()
	switch {
	case first && rep != 0:
		return fmt.Errorf("first value has repetition level %d", rep)
	case !first && (rep == 0 || rep > cs.maxRep):
		return fmt.Errorf("repetition level %d is outside 1..%d", rep, cs.maxRep)
	case def > cs.maxDef:
		return fmt.Errorf("definition level %d is above %d", def, cs.maxDef)
	case v.IsNull():
		if def == cs.maxDef {
			return fmt.Errorf("null with the definition level %d of a value", def)
		}
		return nil
	case def != cs.maxDef:
		return fmt.Errorf("value with definition level %d below %d", def, cs.maxDef)
	case v.Kind() != cs.kind:
		return fmt.Errorf("%s value in a %s column", v.Kind(), cs.kind)
	case cs.width > 0 && len(v.ByteArray()) != cs.width:
		return fmt.Errorf("%d bytes in a fixed_len_byte_array(%d) column", len(v.ByteArray()), cs.width)
	}
	return nil
}
