// Package etl applies a stream's transformations — a CEL filter, computed,
// renamed and dropped columns — to decoded rows.
//
// A Program is compiled once from the stream's `etl:` section against the
// input schema; it owns the compiled CEL programs and the output schema and is
// immutable. Each goroutine that transforms rows binds it to the input and
// output row layouts with Evaluator and calls Apply per record. Apply reads the
// expression inputs straight from the input row (no per-record map) and copies
// pass-through columns as Parquet values with only their column index changed,
// so its cost is dominated by the CEL evaluation itself.
//
// # Expressions
//
// Expressions see the input's top-level primitive columns as variables named
// after them (columns whose names are not CEL identifiers cannot be
// referenced). Column types map to CEL types as follows:
//
//	string                     string
//	bool                       bool
//	int32, int64               int
//	float32, float64           double
//	decimal(p,s)               double (approximate; pass-through columns are not touched)
//	date, timestamp[tz]        google.protobuf.Timestamp (dates at midnight UTC, zoneless timestamps as UTC)
//	binary                     bytes
//
// An optional column is declared nullable: `x == null` tests it, and using a
// null value in arithmetic or a function fails the record, which is then
// dead-lettered. `x == null ? x : x + 1` propagates a null. A required
// column is declared with its plain type, so comparing it with null is a
// compile-time error rather than an always-false test. List and struct
// columns cannot be referenced.
//
// Ordering comparisons work across numeric types (`amount > 100` for a
// double amount), though equality still needs matching types, and the CEL
// strings and math extensions (lowerAscii, trim, split, math.greatest, …) are
// available.
package etl

import (
	"errors"
	"fmt"
	"slices"

	"cel.dev/cel-go/cel"

	"github.com/sluicehq/sluice/ingest/schema"
)

// Config is the `etl:` section of a stream. The zero Config transforms
// nothing; the caller then skips this stage (see IsZero).
type Config struct {
	// Filter is a CEL expression over the input columns that must have type
	// bool. A record for which it is false is dropped and counted as
	// filtered; a null result (from a nullable bool column) counts as false,
	// as in SQL's WHERE. Empty keeps every record.
	Filter string `yaml:"filter"`
	// Columns are computed columns, appended to the output in this order
	// after the input columns.
	Columns []Column `yaml:"columns"`
	// Rename maps an input column name to its name in the output. Expressions
	// still refer to the input name.
	Rename map[string]string `yaml:"rename"`
	// Drop lists input columns left out of the output. Expressions may still
	// read them.
	Drop []string `yaml:"drop"`
}

// Column is a computed column.
type Column struct {
	// Name is the output column name; it must not clash with another output
	// column.
	Name string `yaml:"name"`
	// Expr is a CEL expression over the input columns (not over other
	// computed columns).
	Expr string `yaml:"expr"`
	// Type is the column type in schema.ParseType syntax; it must be
	// primitive. When empty it is inferred from the expression's type: bool →
	// bool, int and uint → int64, double → float64, string → string, bytes →
	// binary, timestamp → timestamptz(us). Other expression types (dyn, null,
	// durations, lists, maps) need an explicit type. An explicit type
	// converts the result: int and uint to int32/int64 with a range check,
	// int, uint and double to float32/float64, int, uint, double and string to
	// decimal (rounding half away from zero to the scale, failing if the
	// precision is exceeded; a double is converted from its shortest decimal
	// form), timestamp to date (UTC day), timestamp or timestamptz, string to
	// binary.
	Type string `yaml:"type"`
	// Required makes the output column required: a null result fails the
	// record instead of storing null.
	Required bool `yaml:"required"`
}

// IsZero reports whether c configures no transformation at all.
func (c Config) IsZero() bool {
	return c.Filter == "" && len(c.Columns) == 0 && len(c.Rename) == 0 && len(c.Drop) == 0
}

// Program is a compiled Config. It is built once at start, is immutable and is
// safe for concurrent use; per-goroutine state lives in an Evaluator.
type Program struct {
	in  schema.Schema
	out schema.Schema

	// vars maps a CEL variable name to the input field (Schema.Fields index)
	// it reads. Only top-level primitive columns are variables.
	vars map[string]int

	filter *expression // nil without a filter
	// columns are the computed columns, in config order; output field
	// len(out.Fields)-len(columns)+i is columns[i].
	columns []computed
	// source maps an output column name to the input field it copies, or to
	// -1-i for computed column i.
	source map[string]int
}

// expression is one compiled CEL expression.
type expression struct {
	prg cel.Program
	// refs are the input columns the expression reads.
	refs []varRef
}

// varRef is an input column read by an expression.
type varRef struct {
	name  string
	field int // index in Schema.Fields
}

type computed struct {
	expression
	name     string
	typ      schema.Type
	required bool
}

// New compiles cfg against the input schema. Every problem is reported
// (joined), each prefixed by its key path relative to the etl section, such
// as "columns[1].expr: ..." or "rename.foo: no such column".
func New(cfg Config, in schema.Schema) (*Program, error) {
	in = cloneSchema(in)
	p := &Program{in: in, vars: map[string]int{}, source: map[string]int{}}
	env, err := p.newEnv()
	if err != nil {
		// The declarations are derived from a valid schema, so this is a bug
		// here rather than a config problem.
		return nil, fmt.Errorf("etl: building the CEL environment: %w", err)
	}
	var errs []error
	report := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}

	if cfg.Filter != "" {
		x, typ, cerrs := p.compile(env, "filter", cfg.Filter)
		errs = append(errs, cerrs...)
		if x != nil {
			if typ.Kind() != cel.BoolKind {
				report("filter", "must be a bool expression, not %s", typ)
			} else {
				p.filter = x
			}
		}
	}

	dropped := map[string]bool{}
	for i, name := range cfg.Drop {
		path := fmt.Sprintf("drop[%d]", i)
		switch {
		case !p.hasInput(name):
			report(path, "no such column %q", name)
		case dropped[name]:
			report(path, "column %q is listed twice", name)
		}
		dropped[name] = true
	}

	renames := sortedKeys(cfg.Rename)
	for _, from := range renames {
		path := "rename." + from
		to := cfg.Rename[from]
		switch {
		case !p.hasInput(from):
			report(path, "no such column")
		case dropped[from]:
			report(path, "column is also dropped")
		case to == "":
			report(path, "new name must not be empty")
		}
	}

	// owners records what produces each output name, to blame the config
	// key that introduced a clash.
	type owner struct{ path, desc string }
	owners := map[string]owner{}
	for i, f := range in.Fields {
		if dropped[f.Name] {
			continue
		}
		name, renamed := cfg.Rename[f.Name]
		if !renamed {
			name = f.Name
		} else if name == "" {
			continue // reported above
		}
		if prev, clash := owners[name]; clash {
			// Input names are unique, so at least one of the two is renamed.
			if renamed {
				report("rename."+f.Name, "output column %q is already %s", name, prev.desc)
			} else {
				report(prev.path, "output column %q is already input column %s", name, f.Name)
			}
			continue
		}
		if renamed {
			owners[name] = owner{"rename." + f.Name, "input column " + f.Name + " renamed by rename." + f.Name}
		} else {
			owners[name] = owner{"", "input column " + f.Name}
		}
		out := cloneField(f)
		out.Name = name
		p.out.Fields = append(p.out.Fields, out)
		p.source[name] = i
	}

	for i, c := range cfg.Columns {
		path := fmt.Sprintf("columns[%d]", i)
		ok := true
		if c.Name == "" {
			report(path+".name", "must not be empty")
			ok = false
		} else if prev, clash := owners[c.Name]; clash {
			hint := ""
			if prev.path == "" {
				hint = " (drop or rename it)"
			}
			report(path+".name", "output column %q is already %s%s", c.Name, prev.desc, hint)
			ok = false
		} else {
			owners[c.Name] = owner{path, "computed by " + path}
		}

		var explicit *schema.Type
		if c.Type != "" {
			t, err := schema.ParseType(c.Type)
			switch {
			case err != nil:
				report(path+".type", "%v", err)
				ok = false
			case !t.IsPrimitive():
				report(path+".type", "computed columns must have a primitive type, not %s", t)
				ok = false
			default:
				explicit = &t
			}
		}

		if c.Expr == "" {
			report(path+".expr", "must not be empty")
			continue
		}
		x, typ, cerrs := p.compile(env, path+".expr", c.Expr)
		errs = append(errs, cerrs...)
		if x == nil {
			continue
		}
		var t schema.Type
		if explicit != nil {
			t = *explicit
			if !convertible(typ, t) {
				report(path+".type", "an expression of type %s cannot be stored as %s", typ, t)
				ok = false
			}
		} else {
			var inferred bool
			t, inferred = inferType(typ)
			if !inferred {
				report(path+".type", "needed: no column type is inferred for an expression of type %s", typ)
				ok = false
			}
		}
		if !ok {
			continue
		}
		p.source[c.Name] = -1 - len(p.columns)
		p.columns = append(p.columns, computed{expression: *x, name: c.Name, typ: t, required: c.Required})
		p.out.Fields = append(p.out.Fields, schema.Field{Name: c.Name, Type: t, Required: c.Required})
	}

	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// Output is the output schema without field IDs: the input columns that are
// not dropped, renamed, in input order, then the computed columns. It returns
// a fresh copy each time, so the caller may assign IDs to it.
func (p *Program) Output() schema.Schema {
	out := cloneSchema(p.out)
	clearIDs(out.Fields)
	return out
}

func (p *Program) hasInput(name string) bool {
	_, ok := p.in.Field(name)
	return ok
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// cloneSchema deep-copies s: Schema.AssignIDs and Bind write through the
// Fields slices of nested structs, and a Program must not change under its
// caller or change its caller's schema.
func cloneSchema(s schema.Schema) schema.Schema {
	fields := make([]schema.Field, len(s.Fields))
	for i, f := range s.Fields {
		fields[i] = cloneField(f)
	}
	return schema.Schema{Fields: fields}
}

func cloneField(f schema.Field) schema.Field {
	f.Type = cloneType(f.Type)
	return f
}

func cloneType(t schema.Type) schema.Type {
	if t.Key != nil {
		k := cloneType(*t.Key)
		t.Key = &k
	}
	if t.Elem != nil {
		e := cloneType(*t.Elem)
		t.Elem = &e
	}
	if t.Fields != nil {
		fields := make([]schema.Field, len(t.Fields))
		for i, f := range t.Fields {
			fields[i] = cloneField(f)
		}
		t.Fields = fields
	}
	return t
}

func clearIDs(fields []schema.Field) {
	for i := range fields {
		f := &fields[i]
		f.ID, f.ElemID, f.KeyID, f.ValueID = 0, 0, 0, 0
		t := &f.Type
		if t.Kind == schema.KindList || t.Kind == schema.KindMap {
			t = t.Elem // map keys are primitive
		}
		clearIDs(t.Fields)
	}
}
