package etl

import (
	"fmt"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/ext"

	"github.com/sluicehq/sluice/ingest/schema"
)

// newEnv declares a CEL variable for every top-level primitive input column
// and records it in p.vars.
func (p *Program) newEnv() (*cel.Env, error) {
	opts := []cel.EnvOption{
		// `amount > 100` should not need `100.0`; the checker otherwise
		// rejects comparisons between int and double.
		cel.CrossTypeNumericComparisons(true),
		ext.Strings(),
		ext.Math(),
	}
	for i, f := range p.in.Fields {
		if !f.Type.IsPrimitive() || !isIdent(f.Name) {
			continue
		}
		t := celType(f.Type)
		if !f.Required {
			// A nullable type accepts null in comparisons (`x == null`) and
			// keeps the static type for everything else, so `x * 2` still
			// type-checks as int and the inferred column type is int64.
			t = cel.NullableType(t)
		}
		opts = append(opts, cel.Variable(f.Name, t))
		p.vars[f.Name] = i
	}
	return cel.NewEnv(opts...)
}

// celType is the CEL type a primitive column is read as.
func celType(t schema.Type) *cel.Type {
	switch t.Kind {
	case schema.KindString:
		return cel.StringType
	case schema.KindBool:
		return cel.BoolType
	case schema.KindInt32, schema.KindInt64:
		return cel.IntType
	case schema.KindFloat32, schema.KindFloat64, schema.KindDecimal:
		return cel.DoubleType
	case schema.KindDate, schema.KindTimestamp, schema.KindTimestampTZ:
		return cel.TimestampType
	case schema.KindBinary:
		return cel.BytesType
	}
	return cel.DynType // unreachable: callers pass primitives only
}

// celReserved are the words CEL reserves; a column named like one of them
// cannot be referenced in an expression.
var celReserved = map[string]bool{
	"false": true, "in": true, "null": true, "true": true,
	"as": true, "break": true, "const": true, "continue": true, "else": true,
	"for": true, "function": true, "if": true, "import": true, "let": true,
	"loop": true, "package": true, "namespace": true, "return": true,
	"var": true, "void": true, "while": true,
}

func isIdent(s string) bool {
	if s == "" || celReserved[s] {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// compile parses and checks one expression. On failure it returns a nil
// expression and every problem found, prefixed by path.
func (p *Program) compile(env *cel.Env, path, src string) (*expression, *cel.Type, []error) {
	parsed, iss := env.Parse(src)
	if iss.Err() != nil {
		return nil, nil, issueErrors(path, iss)
	}
	// Nested columns are not declared, so the checker would call them
	// undeclared references; say what is actually wrong instead.
	var errs []error
	var refs []varRef
	native := parsed.NativeRep()
	walkIdents(native.Expr(), nil, func(e ast.Expr, name string) {
		f, ok := p.in.Field(name)
		if !ok {
			return
		}
		if !f.Type.IsPrimitive() {
			loc := native.SourceInfo().GetStartLocation(e.ID())
			errs = append(errs, fmt.Errorf("%s: column %s is %s; only top-level primitive columns can be used in expressions (at %d:%d)",
				path, name, f.Type, loc.Line(), loc.Column()+1))
			return
		}
		if i, ok := p.vars[name]; ok && !slices.ContainsFunc(refs, func(r varRef) bool { return r.field == i }) {
			refs = append(refs, varRef{name: name, field: i})
		}
	})
	if len(errs) > 0 {
		return nil, nil, errs
	}
	checked, iss := env.Check(parsed)
	if iss.Err() != nil {
		return nil, nil, issueErrors(path, iss)
	}
	prg, err := env.Program(checked, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, nil, []error{fmt.Errorf("%s: %w", path, err)}
	}
	slices.SortFunc(refs, func(a, b varRef) int { return a.field - b.field })
	return &expression{prg: prg, refs: refs}, checked.OutputType(), nil
}

// issueErrors turns CEL issues into one single-line error each.
func issueErrors(path string, iss *cel.Issues) []error {
	var errs []error
	for _, e := range iss.Errors() {
		// The container is always the root one, which only adds noise.
		msg := strings.TrimSuffix(e.Message, " (in container '')")
		errs = append(errs, fmt.Errorf("%s: %s (at %d:%d)", path, msg, e.Location.Line(), e.Location.Column()+1))
	}
	return errs
}

// walkIdents calls visit for every identifier in e that is not a
// comprehension variable in scope (such as x in `list.exists(x, x > 0)`).
func walkIdents(e ast.Expr, locals []string, visit func(ast.Expr, string)) {
	switch e.Kind() {
	case ast.IdentKind:
		name := strings.TrimPrefix(e.AsIdent(), ".")
		if !slices.Contains(locals, name) {
			visit(e, name)
		}
	case ast.SelectKind:
		walkIdents(e.AsSelect().Operand(), locals, visit)
	case ast.CallKind:
		c := e.AsCall()
		if c.IsMemberFunction() {
			walkIdents(c.Target(), locals, visit)
		}
		for _, a := range c.Args() {
			walkIdents(a, locals, visit)
		}
	case ast.ListKind:
		for _, x := range e.AsList().Elements() {
			walkIdents(x, locals, visit)
		}
	case ast.MapKind:
		for _, en := range e.AsMap().Entries() {
			me := en.AsMapEntry()
			walkIdents(me.Key(), locals, visit)
			walkIdents(me.Value(), locals, visit)
		}
	case ast.StructKind:
		for _, f := range e.AsStruct().Fields() {
			walkIdents(f.AsStructField().Value(), locals, visit)
		}
	case ast.ComprehensionKind:
		c := e.AsComprehension()
		walkIdents(c.IterRange(), locals, visit)
		walkIdents(c.AccuInit(), locals, visit)
		inner := append(slices.Clip(locals), c.IterVar(), c.AccuVar())
		if c.HasIterVar2() {
			inner = append(inner, c.IterVar2())
		}
		walkIdents(c.LoopCondition(), inner, visit)
		walkIdents(c.LoopStep(), inner, visit)
		walkIdents(c.Result(), inner, visit)
	}
}

// dynamic reports whether an expression's static type leaves its value type
// to run time. The checker types `x == null ? null : x` as null_type, so null
// is not "always null" and is treated like dyn.
func dynamic(t *cel.Type) bool {
	switch t.Kind() {
	case cel.DynKind, cel.AnyKind, cel.NullTypeKind, cel.TypeParamKind:
		return true
	}
	return false
}

// inferType is the column type of a computed column without an explicit type.
func inferType(t *cel.Type) (schema.Type, bool) {
	switch t.Kind() {
	case cel.BoolKind:
		return schema.Type{Kind: schema.KindBool}, true
	case cel.IntKind, cel.UintKind:
		return schema.Type{Kind: schema.KindInt64}, true
	case cel.DoubleKind:
		return schema.Type{Kind: schema.KindFloat64}, true
	case cel.StringKind:
		return schema.Type{Kind: schema.KindString}, true
	case cel.BytesKind:
		return schema.Type{Kind: schema.KindBinary}, true
	case cel.TimestampKind:
		return schema.Type{Kind: schema.KindTimestampTZ, Unit: schema.Micros}, true
	}
	return schema.Type{}, false
}

// convertible reports whether a value of CEL type t can be stored in a column
// of type target; storeValue implements the conversions at run time.
func convertible(t *cel.Type, target schema.Type) bool {
	if dynamic(t) {
		return true
	}
	k := t.Kind()
	switch target.Kind {
	case schema.KindString:
		return k == cel.StringKind
	case schema.KindBinary:
		return k == cel.BytesKind || k == cel.StringKind
	case schema.KindBool:
		return k == cel.BoolKind
	case schema.KindInt32, schema.KindInt64:
		return k == cel.IntKind || k == cel.UintKind
	case schema.KindFloat32, schema.KindFloat64:
		return k == cel.IntKind || k == cel.UintKind || k == cel.DoubleKind
	case schema.KindDecimal:
		return k == cel.IntKind || k == cel.UintKind || k == cel.DoubleKind || k == cel.StringKind
	case schema.KindDate, schema.KindTimestamp, schema.KindTimestampTZ:
		return k == cel.TimestampKind
	}
	return false
}
