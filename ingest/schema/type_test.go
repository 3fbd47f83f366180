package schema

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseType(t *testing.T) {
	elem := func(t Type) *Type { return &t }
	tests := []struct {
		in   string
		want Type
		str  string // String() of the result; in when empty
	}{
		{in: "string", want: Type{Kind: KindString}},
		{in: "bool", want: Type{Kind: KindBool}},
		{in: "boolean", want: Type{Kind: KindBool}, str: "bool"},
		{in: "int32", want: Type{Kind: KindInt32}},
		{in: "int", want: Type{Kind: KindInt32}, str: "int32"},
		{in: "int64", want: Type{Kind: KindInt64}},
		{in: "long", want: Type{Kind: KindInt64}, str: "int64"},
		{in: "float32", want: Type{Kind: KindFloat32}},
		{in: "float", want: Type{Kind: KindFloat32}, str: "float32"},
		{in: "float64", want: Type{Kind: KindFloat64}},
		{in: "double", want: Type{Kind: KindFloat64}, str: "float64"},
		{in: "date", want: Type{Kind: KindDate}},
		{in: "binary", want: Type{Kind: KindBinary}},
		{in: "bytes", want: Type{Kind: KindBinary}, str: "binary"},
		{in: "decimal(12,2)", want: Type{Kind: KindDecimal, Precision: 12, Scale: 2}},
		{in: "decimal(1,0)", want: Type{Kind: KindDecimal, Precision: 1}},
		{in: "decimal(38,38)", want: Type{Kind: KindDecimal, Precision: 38, Scale: 38}},
		{in: "decimal(010,02)", want: Type{Kind: KindDecimal, Precision: 10, Scale: 2}, str: "decimal(10,2)"},
		{in: "timestamp", want: Type{Kind: KindTimestamp, Unit: Millis}, str: "timestamp(ms)"},
		{in: "timestamp(ms)", want: Type{Kind: KindTimestamp, Unit: Millis}},
		{in: "timestamp(us)", want: Type{Kind: KindTimestamp, Unit: Micros}},
		{in: "timestamptz", want: Type{Kind: KindTimestampTZ, Unit: Millis}, str: "timestamptz(ms)"},
		{in: "timestamptz(ms)", want: Type{Kind: KindTimestampTZ, Unit: Millis}},
		{in: "timestamptz(us)", want: Type{Kind: KindTimestampTZ, Unit: Micros}},
		{in: "list<string>", want: Type{Kind: KindList, Elem: elem(Type{Kind: KindString})}},
		{in: "array<int64>", want: Type{Kind: KindList, Elem: elem(Type{Kind: KindInt64})}, str: "list<int64>"},
		{in: "list<decimal(9,3)>", want: Type{Kind: KindList, Elem: elem(Type{Kind: KindDecimal, Precision: 9, Scale: 3})}},
		{
			in: "struct<id:int64,tags:list<string>>",
			want: Type{Kind: KindStruct, Fields: []Field{
				{Name: "id", Type: Type{Kind: KindInt64}},
				{Name: "tags", Type: Type{Kind: KindList, Elem: elem(Type{Kind: KindString})}},
			}},
		},
		{
			in: "list<struct<a:int64,b:struct<c:timestamptz(us)>>>",
			want: Type{Kind: KindList, Elem: elem(Type{Kind: KindStruct, Fields: []Field{
				{Name: "a", Type: Type{Kind: KindInt64}},
				{Name: "b", Type: Type{Kind: KindStruct, Fields: []Field{
					{Name: "c", Type: Type{Kind: KindTimestampTZ, Unit: Micros}},
				}}},
			}})},
		},
		{
			// Field names keep their case; member order is declaration order.
			in: "struct<Zeta:string,alpha_1:bool>",
			want: Type{Kind: KindStruct, Fields: []Field{
				{Name: "Zeta", Type: Type{Kind: KindString}},
				{Name: "alpha_1", Type: Type{Kind: KindBool}},
			}},
		},
		{in: "map<string,int64>", want: Type{Kind: KindMap, Key: elem(Type{Kind: KindString}), Elem: elem(Type{Kind: KindInt64})}},
		{in: "map<decimal(20,0),timestamptz(us)>", want: Type{Kind: KindMap,
			Key: elem(Type{Kind: KindDecimal, Precision: 20}), Elem: elem(Type{Kind: KindTimestampTZ, Unit: Micros})}},
		{in: "map<int32,struct<a:list<string>,b:map<bool,binary>>>", want: Type{Kind: KindMap, Key: elem(Type{Kind: KindInt32}),
			Elem: elem(Type{Kind: KindStruct, Fields: []Field{
				{Name: "a", Type: Type{Kind: KindList, Elem: elem(Type{Kind: KindString})}},
				{Name: "b", Type: Type{Kind: KindMap, Key: elem(Type{Kind: KindBool}), Elem: elem(Type{Kind: KindBinary})}},
			}})}},
		{in: "list<struct<m:map<string,string>>>", want: Type{Kind: KindList, Elem: elem(Type{Kind: KindStruct, Fields: []Field{
			{Name: "m", Type: Type{Kind: KindMap, Key: elem(Type{Kind: KindString}), Elem: elem(Type{Kind: KindString})}},
		}})}},
		{in: " Map < string , long > ", want: Type{Kind: KindMap, Key: elem(Type{Kind: KindString}), Elem: elem(Type{Kind: KindInt64})},
			str: "map<string,int64>"},
		// Type names are case-insensitive.
		{in: "STRING", want: Type{Kind: KindString}, str: "string"},
		{in: "Int64", want: Type{Kind: KindInt64}, str: "int64"},
		{in: "DECIMAL(5,1)", want: Type{Kind: KindDecimal, Precision: 5, Scale: 1}, str: "decimal(5,1)"},
		{in: "TimestampTZ(us)", want: Type{Kind: KindTimestampTZ, Unit: Micros}, str: "timestamptz(us)"},
		{in: "TIMESTAMP(US)", want: Type{Kind: KindTimestamp, Unit: Micros}, str: "timestamp(us)"},
		{in: "List<Struct<X:INT32>>", want: Type{Kind: KindList, Elem: elem(Type{Kind: KindStruct, Fields: []Field{
			{Name: "X", Type: Type{Kind: KindInt32}},
		}})}, str: "list<struct<X:int32>>"},
		// Spaces and tabs are allowed between tokens.
		{in: "  int64  ", want: Type{Kind: KindInt64}, str: "int64"},
		{in: "decimal( 12 , 2 )", want: Type{Kind: KindDecimal, Precision: 12, Scale: 2}, str: "decimal(12,2)"},
		{in: "timestamptz ( us )", want: Type{Kind: KindTimestampTZ, Unit: Micros}, str: "timestamptz(us)"},
		{in: "list < string >", want: Type{Kind: KindList, Elem: elem(Type{Kind: KindString})}, str: "list<string>"},
		{
			in: "struct< id : int64 ,\ttags : list< string > >",
			want: Type{Kind: KindStruct, Fields: []Field{
				{Name: "id", Type: Type{Kind: KindInt64}},
				{Name: "tags", Type: Type{Kind: KindList, Elem: elem(Type{Kind: KindString})}},
			}},
			str: "struct<id:int64,tags:list<string>>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseType(tt.in)
			if err != nil {
				t.Fatalf("ParseType(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseType(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			wantStr := tt.str
			if wantStr == "" {
				wantStr = tt.in
			}
			if s := got.String(); s != wantStr {
				t.Errorf("String() = %q, want %q", s, wantStr)
			}
			// String is in the syntax ParseType accepts, and says everything.
			again, err := ParseType(got.String())
			if err != nil {
				t.Fatalf("ParseType(String()=%q): %v", got.String(), err)
			}
			if !reflect.DeepEqual(again, got) {
				t.Errorf("round trip through %q = %#v, want %#v", got.String(), again, got)
			}
		})
	}
}

func TestParseTypeErrors(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{"", "expected a type name at offset 0"},
		{"   ", "expected a type name"},
		{"uuid", `unknown type "uuid"`},
		{"int128", `unknown type "int128"`},
		{"list<x>", `unknown type "x"`},
		{"decimal", `expected '(' at offset 7`},
		{"decimal(12)", `expected ','`},
		{"decimal(12,)", "expected a number"},
		{"decimal(a,2)", "expected a number"},
		{"decimal(12,2", `expected ')'`},
		{"decimal(-1,0)", "expected a number"},
		{"decimal(0,0)", "decimal precision 0 out of range 1..38"},
		{"decimal(39,2)", "decimal precision 39 out of range 1..38"},
		{"decimal(99999999999999999999,2)", "expected a number"},
		{"decimal(5,6)", "decimal scale 6 out of range 0..5"},
		{"timestamp(ns)", `timestamp unit "ns" is not ms or us`},
		{"timestamp()", `timestamp unit "" is not ms or us`},
		{"timestamp(ms", `expected ')'`},
		{"list", `expected '<'`},
		{"list<>", "expected a type name"},
		{"list<string", `expected '>'`},
		{"list<list<int64>>", "lists of lists are not supported"},
		{"list<list<x>>", `unknown type "x"`},
		{"array<array<string>>", "lists of lists are not supported"},
		{"map", `expected '<'`},
		{"map<>", "expected a type name"},
		{"map<string>", `expected ','`},
		{"map<string,>", "expected a type name"},
		{"map<string,int64", `expected '>'`},
		{"map<string,int64,bool>", `expected '>'`},
		{"map<list<int64>,string>", "map keys must be primitive, not list<int64>"},
		{"map<struct<a:int64>,string>", "map keys must be primitive, not struct<a:int64>"},
		{"map<map<string,string>,string>", "map keys must be primitive"},
		{"map<string,list<string>>", "maps of lists are not supported"},
		{"map<string,map<string,string>>", "maps of maps are not supported"},
		{"list<map<string,string>>", "lists of maps are not supported"},
		{"map<x,string>", `unknown type "x"`},
		{"struct", `expected '<'`},
		{"struct<>", "expected a field name"},
		{"struct<a>", `expected ':'`},
		{"struct<a:>", "expected a type name"},
		{"struct<a:int64,>", "expected a field name"},
		{"struct<a:int64", `expected '>'`},
		{"struct<a:int64;b:int64>", `expected '>'`},
		{"struct<a:int64,a:string>", `duplicate struct field "a"`},
		{"struct<x:struct<a:int64,b:bool,a:bool>>", `duplicate struct field "a"`},
		{"struct<a-b:int64>", `expected ':'`},
		{"int64 x", `unexpected "x" after type`},
		{"int64>", `unexpected ">" after type`},
		{"list<int64>>", `unexpected ">" after type`},
		{"decimal(12,2)x", `unexpected "x" after type`},
		{"string,", `unexpected "," after type`},
		{"int64\n", `unexpected "\n" after type`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseType(tt.in)
			if err == nil {
				t.Fatalf("ParseType(%q) = %s, want error containing %q", tt.in, got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseType(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, Type{}) {
				t.Errorf("ParseType(%q) returned %#v with its error, want the zero Type", tt.in, got)
			}
		})
	}
}

func TestTypeEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"int64", "long", true},
		{"int64", "int32", false},
		{"decimal(12,2)", "decimal(12,2)", true},
		{"decimal(12,2)", "decimal(12,3)", false},
		{"decimal(12,2)", "decimal(13,2)", false},
		// The numeric input unit is not part of the stored type.
		{"timestamp(ms)", "timestamp(us)", true},
		{"timestamp", "timestamptz", false},
		{"list<string>", "list<string>", true},
		{"list<string>", "list<binary>", false},
		{"struct<a:int64,b:string>", "struct<a:int64,b:string>", true},
		{"struct<a:int64,b:string>", "struct<b:string,a:int64>", false},
		{"struct<a:int64>", "struct<a:int64,b:string>", false},
		{"struct<a:int64>", "struct<A:int64>", false},
		{"list<struct<a:timestamp(us)>>", "list<struct<a:timestamp(ms)>>", true},
		{"map<string,int64>", "map<string,long>", true},
		{"map<string,int64>", "map<string,int32>", false},
		{"map<string,int64>", "map<int64,int64>", false},
		{"map<string,int64>", "list<int64>", false},
		{"map<string,struct<a:int64>>", "map<string,struct<a:int64>>", true},
		{"map<string,struct<a:int64>>", "map<string,struct<b:int64>>", false},
		{"map<int64,timestamp(us)>", "map<int64,timestamp(ms)>", true},
	}
	for _, tt := range tests {
		t.Run(tt.a+"=="+tt.b, func(t *testing.T) {
			a, b := mustParseType(t, tt.a), mustParseType(t, tt.b)
			if got := a.Equal(b); got != tt.want {
				t.Errorf("%s.Equal(%s) = %t, want %t", a, b, got, tt.want)
			}
			if got := b.Equal(a); got != tt.want {
				t.Errorf("%s.Equal(%s) = %t, want %t (not symmetric)", b, a, got, tt.want)
			}
		})
	}
}

func TestTypeStringInvalid(t *testing.T) {
	if got := (Type{}).String(); got != "invalid" {
		t.Errorf("zero Type String() = %q, want invalid", got)
	}
}

func mustParseType(tb testing.TB, s string) Type {
	tb.Helper()
	t, err := ParseType(s)
	if err != nil {
		tb.Fatalf("ParseType(%q): %v", s, err)
	}
	return t
}

// FuzzParseType: ParseType never panics, and whatever it accepts renders to
// a string it parses back to the same type, which renders the same again.
func FuzzParseType(f *testing.F) {
	for _, s := range []string{
		"string", "bool", "int32", "int64", "float32", "float64", "date", "binary",
		"decimal(12,2)", "decimal(38,0)", "timestamp", "timestamptz(us)", "TIMESTAMP(MS)",
		"list<string>", "array<decimal(9,2)>", "struct<id:int64,tags:list<string>>",
		"list<struct<a:int64,b:struct<c:list<bool>>>>", " struct < a : int , b : long > ",
		"list<list<int>>", "struct<a:int,a:int>", "decimal(0,0)", "int64 junk",
		"map<string,int64>", "map<int32,struct<a:map<bool,binary>>>", "map<list<int>,int>", "list<map<int,int>>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ, err := ParseType(s)
		if err != nil {
			return
		}
		str := typ.String()
		again, err := ParseType(str)
		if err != nil {
			t.Fatalf("ParseType(%q) = %s, which does not parse: %v", s, str, err)
		}
		if !reflect.DeepEqual(again, typ) {
			t.Fatalf("ParseType(%q) = %#v; through %q it became %#v", s, typ, str, again)
		}
		if !again.Equal(typ) {
			t.Fatalf("%s is not Equal to itself after a round trip", str)
		}
		if again.String() != str {
			t.Fatalf("String() is not stable: %q then %q", str, again.String())
		}
	})
}
