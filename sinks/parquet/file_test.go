package parquet

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"math/big"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/sluicehq/sluice/ingest/schema"
)

func decimalLiteral(x *big.Int, scale int) iceberg.DecimalLiteral {
	return iceberg.DecimalLiteral{Val: decimal128.FromBigInt(x), Scale: scale}
}

// smallGroups makes files of several row groups from a few thousand rows.
var smallGroups = WriterOptions{PageBufferBytes: 1 << 10, RowGroupBytes: 48 << 10}

func TestFileMetricsAllTypes(t *testing.T) {
	l := newLayout(t, allTypes...)
	recs := genRecords(5000, 1)
	rows := make([]parquet.Row, len(recs))
	for i, rec := range recs {
		rows[i] = shred(l, rec)
	}
	data, got := writeFile(t, l, smallGroups, rows, 256)

	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("open written file: %v", err)
	}
	md := pf.Metadata()
	if len(md.RowGroups) < 3 {
		t.Fatalf("%d row groups, want several", len(md.RowGroups))
	}
	compareMetrics(t, l, got, expectFromFile(t, l, data, rows, recs))

	// The footer as written to the file gives the same metrics as the one
	// parquet-go kept in memory, which Close used.
	reread, err := MetricsFromFooter(md, l)
	if err != nil {
		t.Fatalf("MetricsFromFooter of the written file: %v", err)
	}
	compareMetrics(t, l, reread, got)

	// Coverage of the paths the data is meant to exercise.
	ids := fieldIDs(l)
	if _, ok := got.LowerBounds[ids["tags.element"]]; ok {
		t.Error("list element has a lower bound")
	}
	if n := utf8.RuneCount(got.UpperBounds[ids["s"]]); n != boundLength {
		t.Errorf("upper bound of s has %d code points, want it truncated to %d", n, boundLength)
	}
	if got.LowerBounds[ids["bin"]] == nil || got.UpperBounds[ids["d38"]] == nil {
		t.Error("binary or decimal(38) bound missing")
	}
	nullOnly := false
	for _, rg := range md.RowGroups {
		mm := rg.Columns[l.ByName["opt"].Column].MetaData
		nullOnly = nullOnly || mm.Statistics.NullCount == mm.NumValues
	}
	if !nullOnly {
		t.Error("no row group holds only nulls in column opt; adjust the data")
	}

	// Pages every reader supports, Iceberg's vectorized one included:
	// version 1, values PLAIN, levels RLE.
	for i, rg := range md.RowGroups {
		for j, cc := range rg.Columns {
			for _, s := range cc.MetaData.EncodingStats {
				if s.PageType != format.DataPage || s.Encoding != format.Plain {
					t.Errorf("row group %d column %d has %s pages in %s", i, j, s.PageType, s.Encoding)
				}
			}
			for _, e := range cc.MetaData.Encoding {
				if e != format.Plain && e != format.RLE {
					t.Errorf("row group %d column %d uses %s", i, j, e)
				}
			}
		}
	}

	checkRoundTrip(t, data, rows)
	checkPageIndexes(t, pf)
	checkIcebergDecoding(t, l, got)
	checkManifest(t, l, got, int64(len(data)))
}

// expectFromFile is expectedMetrics with the sizes and offsets that only
// the written file knows, read from it by parquet-go.
func expectFromFile(t *testing.T, l *schema.Layout, data []byte, rows []parquet.Row, recs []record) Metrics {
	t.Helper()
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	want := expectedMetrics(t, l, rows, recs)
	want.ColumnSizes = map[int]int64{}
	for _, rg := range pf.Metadata().RowGroups {
		want.SplitOffsets = append(want.SplitOffsets, rg.FileOffset)
		for j, cc := range rg.Columns {
			want.ColumnSizes[columnID(t, l, j)] += cc.MetaData.TotalCompressedSize
		}
	}
	return want
}

func columnID(t testing.TB, l *schema.Layout, col int) int {
	cols, err := columnsOf(l)
	if err != nil {
		t.Fatal(err)
	}
	return cols[col].id
}

// fieldIDs maps dotted leaf paths to field IDs.
func fieldIDs(l *schema.Layout) map[string]int {
	ids := map[string]int{}
	cols, _ := columnsOf(l)
	for _, c := range cols {
		ids[strings.ReplaceAll(c.name(), ".list.element", ".element")] = c.id
	}
	return ids
}

func compareMetrics(t *testing.T, l *schema.Layout, got, want Metrics) {
	t.Helper()
	names := map[int]string{}
	for name, id := range fieldIDs(l) {
		names[id] = name
	}
	if got.RecordCount != want.RecordCount {
		t.Errorf("RecordCount = %d, want %d", got.RecordCount, want.RecordCount)
	}
	if !slices.Equal(got.SplitOffsets, want.SplitOffsets) {
		t.Errorf("SplitOffsets = %v, want %v", got.SplitOffsets, want.SplitOffsets)
	}
	for _, c := range []struct {
		name      string
		got, want map[int]int64
	}{{"ColumnSizes", got.ColumnSizes, want.ColumnSizes}, {"ValueCounts", got.ValueCounts, want.ValueCounts}, {"NullValueCounts", got.NullValueCounts, want.NullValueCounts}} {
		for _, id := range slices.Sorted(maps.Keys(mergeKeys(c.got, c.want))) {
			g, gok := c.got[id]
			w, wok := c.want[id]
			if g != w || gok != wok {
				t.Errorf("%s[%s] = %d (present %t), want %d (present %t)", c.name, names[id], g, gok, w, wok)
			}
		}
	}
	for _, c := range []struct {
		name      string
		got, want map[int][]byte
	}{{"LowerBounds", got.LowerBounds, want.LowerBounds}, {"UpperBounds", got.UpperBounds, want.UpperBounds}} {
		for _, id := range slices.Sorted(maps.Keys(mergeKeys(c.got, c.want))) {
			g, gok := c.got[id]
			w, wok := c.want[id]
			if !bytes.Equal(g, w) || gok != wok {
				t.Errorf("%s[%s] = %x (present %t), want %x (present %t)", c.name, names[id], g, gok, w, wok)
			}
		}
	}
}

func mergeKeys[V any](a, b map[int]V) map[int]bool {
	keys := map[int]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

// checkRoundTrip reads the file back with parquet-go: the rewritten tail
// must leave a readable file with every row intact.
func checkRoundTrip(t *testing.T, data []byte, want []parquet.Row) {
	t.Helper()
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var got []parquet.Row
	buf := make([]parquet.Row, 100)
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		for {
			n, err := rows.ReadRows(buf)
			for _, r := range buf[:n] {
				got = append(got, r.Clone())
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("read rows: %v", err)
			}
		}
		rows.Close()
	}
	if len(got) != len(want) {
		t.Fatalf("read %d rows, wrote %d", len(got), len(want))
	}
	for i := range want {
		if !rowsEqual(got[i], want[i]) {
			t.Fatalf("row %d reads back as\n%v\nwrote\n%v", i, got[i], want[i])
		}
	}
}

// rowsEqual is parquet.Row.Equal, except that NaN equals NaN.
func rowsEqual(a, b parquet.Row) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Column() != y.Column() || x.RepetitionLevel() != y.RepetitionLevel() || x.DefinitionLevel() != y.DefinitionLevel() {
			return false
		}
		if x.IsNull() || y.IsNull() {
			if x.IsNull() != y.IsNull() {
				return false
			}
			continue
		}
		if x.Kind() == parquet.Double && x.Double() != x.Double() && y.Double() != y.Double() {
			continue
		}
		if !parquet.Equal(x, y) {
			return false
		}
	}
	return true
}

// checkPageIndexes asserts every column index has as many min and max
// entries as pages, which parquet-mr and Arrow require.
func checkPageIndexes(t *testing.T, pf *parquet.File) {
	t.Helper()
	md := pf.Metadata()
	for i, rg := range md.RowGroups {
		for j, cc := range rg.Columns {
			if cc.ColumnIndexLength == 0 {
				if cc.MetaData.Type != format.FixedLenByteArray {
					t.Errorf("row group %d column %d: no column index", i, j)
				}
				continue
			}
			if cc.OffsetIndexLength == 0 {
				t.Errorf("row group %d column %d: no offset index", i, j)
			}
		}
	}
	for k, ci := range pf.ColumnIndexes() {
		if n := len(ci.NullPages); n == 0 {
			continue // parquet-go's placeholder for a chunk without index
		} else if len(ci.MinValues) != n || len(ci.MaxValues) != n {
			t.Errorf("column index %d: %d pages but %d min and %d max values", k, n, len(ci.MinValues), len(ci.MaxValues))
		}
	}
	for k, oi := range pf.OffsetIndexes() {
		if len(oi.PageLocations) == 0 {
			t.Errorf("offset index %d has no pages", k)
		}
	}
}

// checkIcebergDecoding decodes every bound with iceberg-go and encodes it
// back: the bytes must survive unchanged, which proves the serialization
// is the one iceberg-go reads (for decimals: minimal two's complement).
func checkIcebergDecoding(t *testing.T, l *schema.Layout, m Metrics) {
	t.Helper()
	sc, err := l.Schema.Iceberg()
	if err != nil {
		t.Fatal(err)
	}
	for _, bounds := range []map[int][]byte{m.LowerBounds, m.UpperBounds} {
		for id, b := range bounds {
			f, ok := sc.FindFieldByID(id)
			if !ok {
				t.Fatalf("bound for unknown field %d", id)
			}
			lit, err := iceberg.LiteralFromBytes(f.Type, b)
			if err != nil {
				t.Errorf("%s: iceberg-go cannot decode bound %x: %v", f.Name, b, err)
				continue
			}
			back, err := lit.MarshalBinary()
			if err != nil || !bytes.Equal(back, b) {
				t.Errorf("%s: bound %x decodes to %v, which encodes to %x (%v)", f.Name, b, lit, back, err)
			}
		}
	}
}

// checkManifest builds an iceberg-go DataFile from the metrics, writes it
// into a v2 manifest and reads it back.
func checkManifest(t *testing.T, l *schema.Layout, m Metrics, size int64) {
	t.Helper()
	sc, err := l.Schema.Iceberg()
	if err != nil {
		t.Fatal(err)
	}
	b, err := iceberg.NewDataFileBuilder(*iceberg.UnpartitionedSpec, iceberg.EntryContentData,
		"file:///warehouse/t/data/f.parquet", iceberg.ParquetFile, nil, nil, nil, m.RecordCount, size)
	if err != nil {
		t.Fatalf("NewDataFileBuilder: %v", err)
	}
	df := b.ColumnSizes(m.ColumnSizes).ValueCounts(m.ValueCounts).NullValueCounts(m.NullValueCounts).
		LowerBoundValues(m.LowerBounds).UpperBoundValues(m.UpperBounds).SplitOffsets(m.SplitOffsets).Build()
	snap := int64(42)
	entry := iceberg.NewManifestEntry(iceberg.EntryStatusADDED, &snap, nil, nil, df)
	var buf bytes.Buffer
	mf, err := iceberg.WriteManifest("m.avro", &buf, 2, *iceberg.UnpartitionedSpec, sc, snap, []iceberg.ManifestEntry{entry})
	if err != nil {
		t.Fatalf("WriteManifest: %v", err)
	}
	entries, err := iceberg.ReadManifest(mf, bytes.NewReader(buf.Bytes()), false)
	if err != nil || len(entries) != 1 {
		t.Fatalf("ReadManifest: %d entries, %v", len(entries), err)
	}
	got := entries[0].DataFile()
	if got.Count() != m.RecordCount || got.FileSizeBytes() != size {
		t.Errorf("manifest says %d rows, %d bytes; want %d, %d", got.Count(), got.FileSizeBytes(), m.RecordCount, size)
	}
	if !maps.EqualFunc(got.LowerBoundValues(), m.LowerBounds, bytes.Equal) ||
		!maps.EqualFunc(got.UpperBoundValues(), m.UpperBounds, bytes.Equal) {
		t.Errorf("bounds changed through the manifest")
	}
	if !maps.Equal(got.ValueCounts(), m.ValueCounts) || !maps.Equal(got.NullValueCounts(), m.NullValueCounts) ||
		!maps.Equal(got.ColumnSizes(), m.ColumnSizes) || !slices.Equal(got.SplitOffsets(), m.SplitOffsets) {
		t.Errorf("counts changed through the manifest")
	}
}

func TestFileDecimalBoundsAcrossSigns(t *testing.T) {
	// parquet-go orders fixed-length byte arrays as unsigned bytes, so for
	// decimal(38,s) it would report min 3 and max -5 here.
	l := newLayout(t, fieldSpec{"d", "decimal(38,2)", false}, fieldSpec{"n", "decimal(18,2)", false})
	var rows []parquet.Row
	for _, v := range []int64{-5, 3, 7, -100, 0} {
		rows = append(rows, shred(l, record{"d": big.NewInt(v), "n": big.NewInt(v)}))
	}
	data, m := writeFile(t, l, WriterOptions{}, rows, 10)
	ids := fieldIDs(l)
	for _, name := range []string{"d", "n"} {
		lo, hi := m.LowerBounds[ids[name]], m.UpperBounds[ids[name]]
		if !bytes.Equal(lo, []byte{0x9c}) || !bytes.Equal(hi, []byte{0x07}) {
			t.Errorf("%s: bounds %x..%x, want 9c..07 (-100..7)", name, lo, hi)
		}
	}
	// The chunk statistics in the file are right too, for other engines.
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	st := pf.Metadata().RowGroups[0].Columns[l.ByName["d"].Column].MetaData.Statistics
	if !bytes.Equal(st.MinValue, twos(big.NewInt(-100), 16)) || !bytes.Equal(st.MaxValue, twos(big.NewInt(7), 16)) {
		t.Errorf("file statistics %x..%x", st.MinValue, st.MaxValue)
	}
}

func TestFileEmpty(t *testing.T) {
	for _, l := range []*schema.Layout{newLayout(t, allTypes...), newLayout(t, fieldSpec{"x", "int64", false})} {
		var buf bytes.Buffer
		f := Create(&buf, l, WriterOptions{})
		m, size, err := f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if m.RecordCount != 0 || size != int64(buf.Len()) || len(m.SplitOffsets) != 0 {
			t.Errorf("empty file: %d rows, size %d of %d, splits %v", m.RecordCount, size, buf.Len(), m.SplitOffsets)
		}
		if _, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
			t.Errorf("empty file does not open: %v", err)
		}
	}
}

func TestFileLifecycle(t *testing.T) {
	l := newLayout(t, fieldSpec{"x", "int64", false}, fieldSpec{"s", "string", false})
	var buf bytes.Buffer
	f := Create(&buf, l, WriterOptions{Compression: "snappy", RowGroupBytes: 4 << 10})
	row := shred(l, record{"x": int64(1), "s": strings.Repeat("x", 100)})
	for range 200 {
		if err := f.WriteRows([]parquet.Row{row}); err != nil {
			t.Fatal(err)
		}
		if f.dataBytes() > 8<<10 {
			t.Fatalf("holds %d bytes of data with row groups of 4 KiB", f.dataBytes())
		}
	}
	if f.Rows() != 200 || f.WrittenBytes() == 0 || f.WrittenBytes() != int64(buf.Len()) {
		t.Errorf("rows %d, written %d of %d", f.Rows(), f.WrittenBytes(), buf.Len())
	}
	m, size, err := f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.SplitOffsets) < 3 {
		t.Errorf("%d row groups, want several", len(m.SplitOffsets))
	}
	m2, size2, err2 := f.Close()
	if err2 != nil || size2 != size || m2.RecordCount != m.RecordCount {
		t.Errorf("second Close: %v, %d", err2, size2)
	}
	if err := f.WriteRows([]parquet.Row{row}); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteRows after Close: %v", err)
	}
	if f.BufferedBytes() != 0 {
		t.Errorf("BufferedBytes after Close = %d", f.BufferedBytes())
	}
}

func TestFileCompressions(t *testing.T) {
	l := newLayout(t, fieldSpec{"s", "string", false})
	rows := []parquet.Row{shred(l, record{"s": "hello"}), shred(l, record{"s": nil})}
	for _, c := range []string{"", "zstd", "snappy", "gzip", "none"} {
		data, m := writeFile(t, l, WriterOptions{Compression: c}, rows, 2)
		pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%q: %v", c, err)
		}
		codec := pf.Metadata().RowGroups[0].Columns[0].MetaData.Codec
		want := map[string]format.CompressionCodec{"": format.Zstd, "zstd": format.Zstd, "snappy": format.Snappy, "gzip": format.Gzip, "none": format.Uncompressed}[c]
		if codec != want || m.RecordCount != 2 {
			t.Errorf("%q: codec %s, %d rows", c, codec, m.RecordCount)
		}
	}
}

func TestFileInvalidOptions(t *testing.T) {
	l := newLayout(t, fieldSpec{"x", "int64", false})
	opts := WriterOptions{Compression: "lz4", PageBufferBytes: 10, RowGroupBytes: -1}
	err := opts.Validate()
	for _, want := range []string{`compression: "lz4"`, "page_buffer_bytes: 10", "row_group_bytes: -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to report %s", err, want)
		}
	}
	var buf bytes.Buffer
	f := Create(&buf, l, opts)
	if err := f.WriteRows(nil); err == nil || !strings.Contains(err.Error(), "lz4") {
		t.Errorf("WriteRows with invalid options: %v", err)
	}
	if _, _, err := f.Close(); err == nil {
		t.Error("Close with invalid options succeeded")
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %d bytes", buf.Len())
	}
	if err := (WriterOptions{}).Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestFileMalformedRows(t *testing.T) {
	l := newLayout(t, fieldSpec{"a", "int64", true}, fieldSpec{"b", "list<string>", false}, fieldSpec{"d", "decimal(20,0)", false})
	good := shred(l, record{"a": int64(1), "b": []any{"x", "y"}, "d": big.NewInt(1)})
	cases := map[string]parquet.Row{
		"missing column":    good[:len(good)-1],
		"out of order":      {good[0], good[3], good[1], good[2]},
		"null required":     slices.Concat(parquet.Row{parquet.NullValue().Level(0, 0, 0)}, good[1:]),
		"wrong kind":        slices.Concat(parquet.Row{parquet.Int32Value(1).Level(0, 0, 0)}, good[1:]),
		"repeated scalar":   slices.Concat(good[:1], good[:1], good[1:]),
		"bad def level":     slices.Concat(good[:1], parquet.Row{parquet.ByteArrayValue([]byte("x")).Level(0, 2, 1)}, good[2:]),
		"rep on first":      slices.Concat(good[:1], parquet.Row{good[1].Level(1, 3, 1)}, good[2:]),
		"short fixed bytes": slices.Concat(good[:3], parquet.Row{parquet.FixedLenByteArrayValue([]byte{1}).Level(0, 1, 2)}),
	}
	for name, bad := range cases {
		var buf bytes.Buffer
		f := Create(&buf, l, WriterOptions{})
		err := f.WriteRows([]parquet.Row{good, bad})
		if !errors.Is(err, ErrMalformedRow) || !strings.Contains(err.Error(), "row 1") {
			t.Errorf("%s: WriteRows = %v, want ErrMalformedRow for row 1", name, err)
			continue
		}
		// Nothing was written and the file is still usable.
		if err := f.WriteRows([]parquet.Row{good}); err != nil {
			t.Errorf("%s: WriteRows after a malformed batch: %v", name, err)
		}
		if m, _, err := f.Close(); err != nil || m.RecordCount != 1 {
			t.Errorf("%s: Close: %d rows, %v", name, m.RecordCount, err)
		}
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n < len(p) {
		return 0, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestFileWriteErrorIsSticky(t *testing.T) {
	l := newLayout(t, fieldSpec{"s", "string", false})
	f := Create(&failWriter{n: 100}, l, WriterOptions{RowGroupBytes: 1 << 10})
	row := shred(l, record{"s": strings.Repeat("a", 300)})
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = f.WriteRows([]parquet.Row{row})
	}
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("WriteRows = %v, want the write error", err)
	}
	if err2 := f.WriteRows([]parquet.Row{row}); err2 != err {
		t.Errorf("later WriteRows = %v", err2)
	}
	if _, _, err2 := f.Close(); err2 != err {
		t.Errorf("Close = %v", err2)
	}
}

// clickEvent is the flat row of the benchmark and the memory test.
var clickEvent = []fieldSpec{
	{"event_id", "string", true},
	{"user_id", "int64", true},
	{"session_id", "string", false},
	{"ts", "timestamptz(us)", true},
	{"url", "string", false},
	{"referrer", "string", false},
	{"country", "string", false},
	{"device", "string", false},
	{"duration_ms", "int32", false},
	{"price", "decimal(12,2)", false},
	{"is_bot", "bool", false},
	{"ua", "string", false},
}

func clickRows(l *schema.Layout, n int) []parquet.Row {
	recs := clickRecords(n)
	rows := make([]parquet.Row, n)
	for i, rec := range recs {
		rows[i] = shred(l, rec)
	}
	return rows
}

func clickRecords(n int) []record {
	r := rand.New(rand.NewPCG(11, 13))
	countries := []string{"US", "DE", "FR", "JP", "BR", "IN", "GB", "CA"}
	devices := []string{"mobile", "desktop", "tablet"}
	paths := []string{"products", "cart", "checkout", "search", "account", "home"}
	hex := func(k int) string {
		const digits = "0123456789abcdef"
		b := make([]byte, k)
		for i := range b {
			b[i] = digits[r.IntN(16)]
		}
		return string(b)
	}
	recs := make([]record, n)
	ts := int64(1_700_000_000_000_000)
	for i := range recs {
		ts += r.Int64N(2000)
		rec := record{
			"event_id":    hex(32),
			"user_id":     r.Int64N(1_000_000),
			"session_id":  "s-" + hex(12),
			"ts":          ts,
			"url":         "https://shop.example.com/" + paths[r.IntN(len(paths))] + "/" + strconv.Itoa(r.IntN(5000)),
			"referrer":    nil,
			"country":     countries[r.IntN(len(countries))],
			"device":      devices[r.IntN(len(devices))],
			"duration_ms": int32(r.IntN(30000)),
			"price":       big.NewInt(r.Int64N(1_000_000) - 1000),
			"is_bot":      r.IntN(50) == 0,
			"ua":          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_" + strconv.Itoa(r.IntN(6)) + " like Mac OS X) AppleWebKit/605.1.15",
		}
		if r.IntN(3) > 0 {
			rec["referrer"] = "https://search.example.org/?q=" + hex(6)
		}
		if r.IntN(10) == 0 {
			rec["price"] = nil
		}
		recs[i] = rec
	}
	return recs
}

// TestFileMemoryPerOpenFile measures the heap an open file holds, which
// bounds how many files can be open at once: after a few rows, and after a
// row group was flushed (parquet-go keeps its writer and some column
// buffers from then on).
func TestFileMemoryPerOpenFile(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory")
	}
	click := newLayout(t, clickEvent...)
	all := newLayout(t, allTypes...)
	var allRows, allFirst []parquet.Row
	for _, rec := range genRecords(10, 3) {
		allRows = append(allRows, shred(all, rec))
	}
	for _, rec := range genRecords(2000, 4) {
		allFirst = append(allFirst, shred(all, rec))
	}
	for _, c := range []struct {
		name    string
		l       *schema.Layout
		first   []parquet.Row // written, then flushed as a row group
		rows    []parquet.Row // written and left open
		maxHeap int64
	}{
		{"click_event/10_rows", click, nil, clickRows(click, 10), 32 << 10},
		{"all_types/10_rows", all, nil, allRows, 32 << 10},
		{"click_event/10_rows_after_a_row_group", click, clickRows(click, 2000), clickRows(click, 10), 384 << 10},
		{"all_types/10_rows_after_a_row_group", all, allFirst, allRows, 512 << 10},
	} {
		const files = 100
		open := make([]*File, files)
		opts := WriterOptions{} // one row group of first, flushed by hand
		before := heapInUse()
		for i := range open {
			f := Create(io.Discard, c.l, opts)
			if c.first != nil {
				if err := f.WriteRows(c.first); err != nil {
					t.Fatal(err)
				}
				if err := f.unstage(); err != nil {
					t.Fatal(err)
				}
				if err := f.flushRowGroup(); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.WriteRows(c.rows); err != nil {
				t.Fatal(err)
			}
			open[i] = f
		}
		after := heapInUse()
		var buffered int64
		for _, f := range open {
			buffered += f.BufferedBytes()
		}
		perFile := (after - before) / files
		t.Logf("%s (%d columns): %d bytes of heap per open file; BufferedBytes reports %d",
			c.name, c.l.NumColumns, perFile, buffered/files)
		if perFile > c.maxHeap {
			t.Errorf("%s: %d bytes per open file, want at most %d", c.name, perFile, c.maxHeap)
		}
		// The daemon's memory budget relies on the estimate.
		if est := buffered / files; est < perFile/2 || est > 2*perFile {
			t.Errorf("%s: BufferedBytes estimates %d bytes, the heap says %d", c.name, est, perFile)
		}
		runtime.KeepAlive(open)
	}
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// The data of the benchmark is also checked here, so the benchmark
// measures a path that works.
func TestClickRows(t *testing.T) {
	l := newLayout(t, clickEvent...)
	recs := clickRecords(3000)
	rows := make([]parquet.Row, len(recs))
	for i, rec := range recs {
		rows[i] = shred(l, rec)
	}
	data, m := writeFile(t, l, WriterOptions{RowGroupBytes: 64 << 10}, rows, 256)
	compareMetrics(t, l, m, expectFromFile(t, l, data, rows, recs))
	checkRoundTrip(t, data, rows)
}

func BenchmarkWriteRows(b *testing.B) {
	l := newLayout(b, clickEvent...)
	const batch = 256
	rows := clickRows(l, 4096)
	for _, codec := range []string{"zstd", "snappy"} {
		b.Run("compression="+codec, func(b *testing.B) {
			var out countWriter
			f := Create(&out, l, WriterOptions{Compression: codec})
			i := 0
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := f.WriteRows(rows[i : i+batch]); err != nil {
					b.Fatal(err)
				}
				i = (i + batch) % len(rows)
			}
			if _, _, err := f.Close(); err != nil {
				b.Fatal(err)
			}
			cpu := cpuTime() - cpu0
			rowsDone := float64(b.N) * batch
			b.ReportMetric(batch, "rows/op")
			if cpu > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/rowsDone, "cpu-ns/row")
			}
			b.ReportMetric(rowsDone/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/rowsDone, "ns/row")
			b.ReportMetric(float64(out.n)/rowsDone, "bytes/row")
		})
	}
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
