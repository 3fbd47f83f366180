package etl

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

// Evaluator applies a Program to rows of one input layout and produces rows
// of one output layout. It keeps scratch state between calls, so each
// goroutine needs its own.
type Evaluator struct {
	p *Program

	flat       bool // the input layout is flat
	numColumns int  // leaf columns of the input

	// slots describes each input field (by Schema.Fields index) for reading
	// it as a CEL variable.
	slots []slot
	// colTop maps an input leaf column to the position of its top-level
	// field in the input layout's Top (non-flat inputs only).
	colTop []int
	// starts holds, for the row being applied, the offset of the first value
	// of each input Top field, followed by len(row) (non-flat inputs only).
	starts []int

	// steps produce the output row, one per output top-level field in
	// column order.
	steps []step
	// computed holds the computed column values of the row being applied.
	computed []parquet.Value
	// num and digits are scratch space for decimal conversions.
	num, digits []byte

	act activation
}

type slot struct {
	col int // leaf column, which is the row offset in a flat row
	top int // position in the input layout's Top
	def int // definition level of a non-null value
	typ schema.Type
}

type step struct {
	computed int // index into Program.columns, or -1 to copy an input field
	inTop    int // copy: position of the input field in the input Top
	inCol    int // copy: first leaf column of the input field
	outCol   int // first leaf column of the output field
	def      int // computed: definition level of a non-null value
}

// activation resolves CEL variables lazily from the row being applied, so a
// record costs no map and only the columns an expression reads are decoded.
type activation struct {
	e   *Evaluator
	src parquet.Row
	// refs are the variables of the expression being evaluated. The
	// interpreter passes the same name strings on every evaluation, so
	// scanning these few usually ends at a pointer-equal string, which is
	// cheaper than hashing the name for the map in Program.vars.
	refs []varRef
}

func (a *activation) ResolveName(name string) (any, bool) {
	for _, r := range a.refs {
		if r.name == name {
			return a.e.input(a.src, r.field), true
		}
	}
	i, ok := a.e.p.vars[name]
	if !ok {
		return nil, false
	}
	return a.e.input(a.src, i), true
}

func (a *activation) Parent() cel.Activation { return nil }

// Evaluator binds p to the layout of its input rows and to the layout of the
// output rows, which the caller builds from Output once field IDs are bound
// to the table (only then are the output column indexes known). The layouts
// must describe the schema p was compiled for and Output (fields matched by
// name, field IDs ignored).
func (p *Program) Evaluator(in, out *schema.Layout) (*Evaluator, error) {
	if err := errors.Join(
		sameFields("input", in.Schema, p.in, true),
		sameFields("output", out.Schema, p.out, false),
	); err != nil {
		return nil, err
	}
	e := &Evaluator{
		p:          p,
		flat:       in.Flat,
		numColumns: in.NumColumns,
		slots:      make([]slot, len(p.in.Fields)),
		computed:   make([]parquet.Value, len(p.columns)),
	}
	e.act.e = e
	topOf := make([]int, len(p.in.Fields)) // input field -> Top position
	for pos, n := range in.Top {
		topOf[n.Index] = pos
		e.slots[n.Index] = slot{col: n.Column, top: pos, def: n.Def, typ: n.Field.Type}
	}
	if !in.Flat {
		e.colTop = make([]int, in.NumColumns)
		for pos, n := range in.Top {
			for _, c := range n.Leaves {
				e.colTop[c] = pos
			}
		}
		e.starts = make([]int, len(in.Top)+1)
	}
	for _, n := range out.Top {
		src := p.source[n.Field.Name]
		if src < 0 {
			e.steps = append(e.steps, step{computed: -1 - src, outCol: n.Column, def: n.Def})
			continue
		}
		inNode := in.Top[topOf[src]]
		// Copying re-indexes by a constant offset, which holds because a
		// top-level field's leaves are consecutive columns and the two fields
		// have the same type.
		if !consecutive(inNode.Leaves) || !consecutive(n.Leaves) || len(inNode.Leaves) != len(n.Leaves) {
			return nil, fmt.Errorf("etl: column %s: leaf columns %v of the input and %v of the output do not correspond", n.Field.Name, inNode.Leaves, n.Leaves)
		}
		e.steps = append(e.steps, step{computed: -1, inTop: topOf[src], inCol: inNode.Leaves[0], outCol: n.Leaves[0]})
	}
	return e, nil
}

// sameFields reports how a layout's schema differs from the one the program
// expects. Input fields must also be in the same order, because the program
// refers to them by position.
func sameFields(what string, got, want schema.Schema, ordered bool) error {
	var errs []error
	if len(got.Fields) != len(want.Fields) {
		errs = append(errs, fmt.Errorf("etl: %s layout has %d columns, want %d", what, len(got.Fields), len(want.Fields)))
	}
	for i, w := range want.Fields {
		var g schema.Field
		var ok bool
		if ordered {
			ok = i < len(got.Fields) && got.Fields[i].Name == w.Name
			if ok {
				g = got.Fields[i]
			}
		} else {
			g, ok = got.Field(w.Name)
		}
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("etl: %s layout has no column %s at position %d", what, w.Name, i))
		case !g.Type.Equal(w.Type) || g.Required != w.Required:
			errs = append(errs, fmt.Errorf("etl: %s layout column %s is %s (required %t), want %s (required %t)",
				what, w.Name, g.Type, g.Required, w.Type, w.Required))
		}
	}
	return errors.Join(errs...)
}

func consecutive(cols []int) bool {
	for i, c := range cols {
		if c != cols[0]+i {
			return false
		}
	}
	return len(cols) > 0
}

// Apply writes the output row for src into dst[:0] and returns it. keep is
// false when the filter rejected the record (or err is set). A non-nil error
// means the record cannot be transformed — an expression failed, a result
// does not fit its column, or src does not match the input layout — and it
// should be dead-lettered with err.Error() as the reason.
//
// dst must not overlap src. The output row shares byte arrays with src
// (strings and binaries are not copied), so it is valid as long as src's are;
// it does not share memory with the Evaluator, so rows from successive calls
// may be kept together in a batch.
func (e *Evaluator) Apply(dst, src parquet.Row) (out parquet.Row, keep bool, err error) {
	e.act.src = src
	out, keep, err = e.apply(dst[:0], src)
	e.act.src, e.act.refs = nil, nil // do not keep the caller's row alive
	return out, keep, err
}

func (e *Evaluator) apply(dst, src parquet.Row) (parquet.Row, bool, error) {
	if err := e.index(src); err != nil {
		return dst, false, err
	}
	if f := e.p.filter; f != nil {
		e.act.refs = f.refs
		v, _, err := f.prg.Eval(&e.act)
		if err != nil {
			return dst, false, e.evalError("filter", f, src, err)
		}
		switch b := v.(type) {
		case types.Bool:
			if !b {
				return dst, false, nil
			}
		case types.Null: // null is not true, as in SQL's WHERE
			return dst, false, nil
		default:
			return dst, false, fmt.Errorf("etl: filter: result %v is a %s, not a bool", v, v.Type().TypeName())
		}
	}
	for i := range e.p.columns {
		c := &e.p.columns[i]
		e.act.refs = c.refs
		v, _, err := c.prg.Eval(&e.act)
		if err != nil {
			return dst, false, e.evalError("column "+c.name, &c.expression, src, err)
		}
		pv, err := e.store(v, c.typ)
		if err != nil {
			return dst, false, fmt.Errorf("etl: column %s: %w", c.name, err)
		}
		if pv.IsNull() && c.required {
			return dst, false, e.evalError("column "+c.name, &c.expression, src, errors.New("required column is null"))
		}
		e.computed[i] = pv
	}
	if e.flat {
		// A flat input makes a flat output, one value per step, so the row
		// is written by index rather than appended value by value.
		dst = slices.Grow(dst, len(e.steps))[:len(e.steps)]
		for k, s := range e.steps {
			if s.computed >= 0 {
				dst[k] = e.computedValue(s)
				continue
			}
			dst[k] = src[s.inCol]
			dst[k].SetColumnIndex(s.outCol)
		}
		return dst, true, nil
	}
	for _, s := range e.steps {
		switch {
		case s.computed >= 0:
			dst = append(dst, e.computedValue(s))
		default:
			// A top-level field keeps its repetition and definition levels
			// wherever it sits in the row; only the columns move.
			delta := s.outCol - s.inCol
			for _, v := range src[e.starts[s.inTop]:e.starts[s.inTop+1]] {
				v.SetColumnIndex(v.Column() + delta)
				dst = append(dst, v)
			}
		}
	}
	return dst, true, nil
}

func (e *Evaluator) computedValue(s step) parquet.Value {
	v := e.computed[s.computed]
	def := s.def
	if v.IsNull() {
		def = 0 // top-level: null is definition level 0
	}
	return v.Level(0, def, s.outCol)
}

// index checks that src fits the input layout and, for a non-flat layout,
// finds where each top-level field's values start. Rows come from our own
// parsers, but a malformed one must be dead-lettered, not crash the daemon.
func (e *Evaluator) index(src parquet.Row) error {
	if e.flat {
		if len(src) != e.numColumns {
			return fmt.Errorf("etl: row has %d values, want one per column (%d)", len(src), e.numColumns)
		}
		return nil
	}
	// Values are in column order and every top-level field's leaves are
	// consecutive columns, so one pass finds each field's first value. Every
	// field has at least one value (a null or empty list still has one).
	top := -1
	for i, v := range src {
		c := v.Column()
		if c >= len(e.colTop) {
			return fmt.Errorf("etl: row value %d has column %d, want < %d", i, c, len(e.colTop))
		}
		switch t := e.colTop[c]; {
		case t == top:
		case t == top+1:
			top = t
			e.starts[t] = i
		default:
			return fmt.Errorf("etl: row value %d has column %d out of order or after a column without values", i, c)
		}
	}
	if top != len(e.starts)-2 {
		return fmt.Errorf("etl: row has values for %d of %d top-level columns", top+1, len(e.starts)-1)
	}
	e.starts[top+1] = len(src)
	return nil
}

// value is the input value of a top-level primitive field.
func (e *Evaluator) value(src parquet.Row, field int) parquet.Value {
	s := &e.slots[field]
	if e.flat {
		return src[s.col]
	}
	return src[e.starts[s.top]]
}

// input is the CEL value of an input field.
func (e *Evaluator) input(src parquet.Row, field int) ref.Val {
	v := e.value(src, field)
	s := &e.slots[field]
	if v.IsNull() || v.DefinitionLevel() < s.def {
		return types.NullValue
	}
	return celValue(v, s.typ)
}

// evalError explains a failed evaluation. CEL reports a null operand as "no
// such overload", so the inputs that were null are named.
func (e *Evaluator) evalError(what string, x *expression, src parquet.Row, err error) error {
	var nulls []string
	for _, r := range x.refs {
		s := &e.slots[r.field]
		if v := e.value(src, r.field); v.IsNull() || v.DefinitionLevel() < s.def {
			nulls = append(nulls, r.name)
		}
	}
	if len(nulls) > 0 {
		return fmt.Errorf("etl: %s: %w (null inputs: %s)", what, err, strings.Join(nulls, ", "))
	}
	return fmt.Errorf("etl: %s: %w", what, err)
}
