package checkpoint

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestPositionsEncodeDecode(t *testing.T) {
	tests := []struct {
		name string
		p    Positions
		enc  string // exact encoding, when it is deterministic
	}{
		{name: "empty", p: Positions{}, enc: "{}"},
		{name: "one", p: Positions{"orders": {0: 42}}, enc: `{"orders":{"0":42}}`},
		{name: "several", p: Positions{
			"orders":  {0: 0, 1: 17, 11: 1 << 40},
			"clicks":  {2: math.MaxInt64},
			"a.b-c_d": {math.MaxInt32: 9},
		}},
		{name: "negative partition", p: Positions{"t": {-1: 3}}},
		{name: "topic with quotes", p: Positions{`we"ird\topic`: {0: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.p.Encode()
			if tt.enc != "" && enc != tt.enc {
				t.Errorf("Encode() = %s, want %s", enc, tt.enc)
			}
			got, err := DecodePositions(enc)
			if err != nil {
				t.Fatalf("DecodePositions(%s): %v", enc, err)
			}
			if !reflect.DeepEqual(got, tt.p) {
				t.Errorf("DecodePositions(Encode()) = %v, want %v", got, tt.p)
			}
			if got.Count() != tt.p.Count() {
				t.Errorf("Count() = %d, want %d", got.Count(), tt.p.Count())
			}
			// The summary is compared as a string between commits, so the
			// encoding must not depend on map iteration order.
			for range 5 {
				if again := got.Encode(); again != enc {
					t.Fatalf("Encode() not deterministic: %s then %s", enc, again)
				}
			}
		})
	}
}

func TestDecodePositionsNullIsEmpty(t *testing.T) {
	p, err := DecodePositions("null")
	if err != nil {
		t.Fatalf("DecodePositions(null): %v", err)
	}
	if p == nil || p.Count() != 0 {
		t.Errorf("DecodePositions(null) = %#v, want empty non-nil Positions", p)
	}
	p.Set("t", 0, 1) // usable: not a nil map
}

func TestDecodePositionsErrors(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"empty string", "", "decode positions"},
		{"not JSON", "orders:0=1", "decode positions"},
		{"truncated", `{"orders":{"0":1}`, "decode positions"},
		{"array", `[1,2]`, "decode positions"},
		{"topic not an object", `{"orders":5}`, "decode positions"},
		{"offset not a number", `{"orders":{"0":"5"}}`, "decode positions"},
		{"fractional offset", `{"orders":{"0":1.5}}`, "decode positions"},
		{"partition not a number", `{"orders":{"zero":1}}`, `partition "zero" of orders`},
		{"partition overflows int32", `{"orders":{"2147483648":1}}`, `partition "2147483648" of orders`},
		{"partition with spaces", `{"orders":{" 1":1}}`, `partition " 1" of orders`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodePositions(tt.in)
			if err == nil {
				t.Fatalf("DecodePositions(%q) = %v, want error", tt.in, p)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("DecodePositions(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
			}
			if p != nil {
				t.Errorf("DecodePositions(%q) returned %v with its error", tt.in, p)
			}
		})
	}
}

func TestPositionsSetGet(t *testing.T) {
	var p Positions = Positions{}
	if _, ok := p.Get("t", 0); ok {
		t.Error("Get on empty positions found something")
	}
	p.Set("t", 0, 5)
	p.Set("t", 0, 7)
	p.Set("t", 3, 1)
	p.Set("u", 0, 2)
	if v, ok := p.Get("t", 0); !ok || v != 7 {
		t.Errorf("Get(t,0) = %d, %t; want 7, true", v, ok)
	}
	if _, ok := p.Get("t", 1); ok {
		t.Error("Get(t,1) found an unset partition")
	}
	if _, ok := p.Get("v", 0); ok {
		t.Error("Get(v,0) found an unset topic")
	}
	if p.Count() != 3 {
		t.Errorf("Count() = %d, want 3", p.Count())
	}
	var nilP Positions
	if _, ok := nilP.Get("t", 0); ok || nilP.Count() != 0 {
		t.Error("nil Positions are not empty")
	}
}

func TestPositionsMerge(t *testing.T) {
	tests := []struct {
		name string
		p, o Positions
		want Positions
	}{
		{"into empty", Positions{}, Positions{"a": {0: 1}}, Positions{"a": {0: 1}}},
		{"from empty", Positions{"a": {0: 1}}, Positions{}, Positions{"a": {0: 1}}},
		{"from nil", Positions{"a": {0: 1}}, nil, Positions{"a": {0: 1}}},
		{"overwrites per partition", Positions{"a": {0: 1, 1: 5}}, Positions{"a": {1: 9}}, Positions{"a": {0: 1, 1: 9}}},
		{
			// Merge overwrites; it does not keep the larger offset (a table
			// restored to an older snapshot moves positions back).
			"overwrites with smaller", Positions{"a": {0: 10}}, Positions{"a": {0: 3}}, Positions{"a": {0: 3}},
		},
		{"new topics", Positions{"a": {0: 1}}, Positions{"b": {2: 4}}, Positions{"a": {0: 1}, "b": {2: 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oBefore := tt.o.Clone()
			tt.p.Merge(tt.o)
			if !reflect.DeepEqual(tt.p, tt.want) {
				t.Errorf("Merge = %v, want %v", tt.p, tt.want)
			}
			if tt.o != nil && !reflect.DeepEqual(tt.o, oBefore) {
				t.Errorf("Merge changed its argument: %v, was %v", tt.o, oBefore)
			}
		})
	}
}

// TestPositionsIndependence: after Merge or Clone, writing to one set of
// positions never shows in another, since workers hand their positions to
// the committer and carry on with new ones.
func TestPositionsIndependence(t *testing.T) {
	src := Positions{"a": {0: 1, 1: 2}, "b": {0: 3}}

	c := src.Clone()
	if !reflect.DeepEqual(c, src) {
		t.Fatalf("Clone = %v, want %v", c, src)
	}
	c.Set("a", 0, 100)
	c.Set("c", 0, 1)
	if v, _ := src.Get("a", 0); v != 1 {
		t.Errorf("Set on a clone changed the original: a/0 = %d", v)
	}
	if _, ok := src.Get("c", 0); ok {
		t.Error("Set on a clone added a topic to the original")
	}
	src.Set("b", 0, 200)
	if v, _ := c.Get("b", 0); v != 3 {
		t.Errorf("Set on the original changed the clone: b/0 = %d", v)
	}

	merged := Positions{}
	merged.Merge(src)
	src.Set("a", 1, 300)
	if v, _ := merged.Get("a", 1); v != 2 {
		t.Errorf("Set on a merged source changed the merge result: a/1 = %d", v)
	}
	merged.Set("b", 0, 400)
	if v, _ := src.Get("b", 0); v != 200 {
		t.Errorf("Set on the merge result changed its source: b/0 = %d", v)
	}

	if c := Positions(nil).Clone(); c == nil || c.Count() != 0 {
		t.Errorf("nil.Clone() = %#v, want empty non-nil", c)
	}
}

func TestCountsAdd(t *testing.T) {
	c := Counts{Read: 1, DeadLettered: 2, Filtered: 3, Written: 4}
	c.Add(Counts{Read: 10, DeadLettered: 20, Filtered: 30, Written: 40})
	if want := (Counts{Read: 11, DeadLettered: 22, Filtered: 33, Written: 44}); c != want {
		t.Errorf("Add = %+v, want %+v", c, want)
	}
}

// FuzzDecodePositions: positions are read back from table snapshot summaries
// that anyone with catalog access can edit, so decoding never panics, and
// whatever decodes encodes to a summary that decodes to the same positions.
func FuzzDecodePositions(f *testing.F) {
	for _, s := range []string{
		"{}", "null", `{"orders":{"0":42,"1":7}}`, `{"a":{"-1":0}}`, `{"a":{"01":1}}`,
		`{"a":{"2147483648":1}}`, `{"a":5}`, `[`, "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := DecodePositions(s)
		if err != nil {
			return
		}
		enc := p.Encode()
		again, err := DecodePositions(enc)
		if err != nil {
			t.Fatalf("DecodePositions(%q) = %v, whose encoding %s does not decode: %v", s, p, enc, err)
		}
		if !reflect.DeepEqual(again, p) && !(p.Count() == 0 && again.Count() == 0) {
			t.Fatalf("round trip of %q: %v became %v", s, p, again)
		}
		if again.Encode() != enc {
			t.Fatalf("Encode not stable: %s then %s", enc, again.Encode())
		}
	})
}
