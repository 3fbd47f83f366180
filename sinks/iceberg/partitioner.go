package iceberg

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"
	"github.com/twmb/murmur3"

	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/schema"
)

// Partitioner computes the Iceberg partition of a row. It applies the
// transforms itself rather than through iceberg-go's Literal API because it
// runs once per row and must not allocate; tests check it against
// iceberg-go's transforms.
type Partitioner struct {
	spec   iceberg.PartitionSpec
	schema *iceberg.Schema
	fields []partField
	flat   bool
	hive   bool // Partition.Path is a Hive-style directory path
}

type partField struct {
	id        int    // partition field ID
	name      string // source column
	transform string
	buckets   int
	column    int // leaf column index of the source in the output layout
	kind      schema.Kind
	scale     int
}

// NewPartitioner binds the configured partition fields to an output layout
// whose field IDs match the table.
func NewPartitioner(exprs []string, l *schema.Layout) (*Partitioner, error) {
	spec, err := partitionSpec(exprs, l.Schema)
	if err != nil {
		return nil, err
	}
	isch, err := l.Schema.Iceberg()
	if err != nil {
		return nil, err
	}
	p := &Partitioner{spec: spec, schema: isch, flat: l.Flat}
	for i, expr := range exprs {
		pf, err := config.ParsePartitionField(expr, l.Schema)
		if err != nil {
			return nil, err
		}
		n := l.ByName[pf.Column]
		p.fields = append(p.fields, partField{
			id: firstPartitionFieldID + i, name: pf.Column, transform: pf.Transform, buckets: pf.Buckets,
			column: n.Column, kind: n.Field.Type.Kind, scale: n.Field.Type.Scale,
		})
	}
	return p, nil
}

// Spec is the Iceberg partition spec.
func (p *Partitioner) Spec() iceberg.PartitionSpec { return p.spec }

// Unpartitioned reports whether the table has no partition fields.
func (p *Partitioner) Unpartitioned() bool { return len(p.fields) == 0 }

func (p *Partitioner) value(row parquet.Row, col int) parquet.Value {
	if p.flat {
		return row[col]
	}
	for _, v := range row {
		if v.Column() == col {
			return v
		}
	}
	return parquet.Value{}
}

// AppendKey appends a compact, comparable encoding of the row's partition to
// buf. Rows with equal keys belong to the same partition.
func (p *Partitioner) AppendKey(buf []byte, row parquet.Row) []byte {
	for i := range p.fields {
		f := &p.fields[i]
		v := p.value(row, f.column)
		if v.IsNull() {
			buf = append(buf, 0)
			continue
		}
		buf = append(buf, 1)
		switch f.transform {
		case "identity":
			switch f.kind {
			case schema.KindString, schema.KindBinary:
				b := v.ByteArray()
				buf = binary.LittleEndian.AppendUint32(buf, uint32(len(b)))
				buf = append(buf, b...)
			case schema.KindBool:
				if v.Boolean() {
					buf = append(buf, 1)
				} else {
					buf = append(buf, 0)
				}
			case schema.KindInt32, schema.KindDate:
				buf = binary.LittleEndian.AppendUint32(buf, uint32(v.Int32()))
			default:
				buf = binary.LittleEndian.AppendUint64(buf, uint64(v.Int64()))
			}
		default:
			buf = binary.LittleEndian.AppendUint32(buf, uint32(p.transformInt(f, v)))
		}
	}
	return buf
}

// transformInt applies a time or bucket transform.
func (p *Partitioner) transformInt(f *partField, v parquet.Value) int32 {
	if f.transform == "bucket" {
		return bucket(f, v)
	}
	var micros int64
	if f.kind == schema.KindDate {
		micros = int64(v.Int32()) * int64(24*time.Hour/time.Microsecond)
	} else {
		micros = v.Int64()
	}
	switch f.transform {
	case "hour":
		return int32(floorDiv(micros, int64(time.Hour/time.Microsecond)))
	case "day":
		return int32(floorDiv(micros, int64(24*time.Hour/time.Microsecond)))
	}
	t := time.UnixMicro(micros).UTC()
	switch f.transform {
	case "month":
		return int32((t.Year()-1970)*12 + int(t.Month()) - 1)
	case "year":
		return int32(t.Year() - 1970)
	}
	return 0
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func bucket(f *partField, v parquet.Value) int32 {
	var h uint32
	switch f.kind {
	case schema.KindString, schema.KindBinary:
		h = murmur3.Sum32(v.ByteArray())
	case schema.KindDecimal:
		h = murmur3.Sum32(decimalBytes(v))
	case schema.KindInt32, schema.KindDate:
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(int64(v.Int32())))
		h = murmur3.Sum32(b[:])
	default:
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(v.Int64()))
		h = murmur3.Sum32(b[:])
	}
	return int32((h & math.MaxInt32) % uint32(f.buckets))
}

// decimalBytes is the unscaled value as minimal big-endian two's complement,
// which is what Iceberg hashes.
func decimalBytes(v parquet.Value) []byte {
	var unscaled *big.Int
	switch v.Kind() {
	case parquet.Int32:
		unscaled = big.NewInt(int64(v.Int32()))
	case parquet.Int64:
		unscaled = big.NewInt(v.Int64())
	default:
		b := v.ByteArray()
		unscaled = new(big.Int).SetBytes(b)
		if len(b) > 0 && b[0]&0x80 != 0 {
			unscaled.Sub(unscaled, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
		}
	}
	return twosComplement(unscaled)
}

func twosComplement(x *big.Int) []byte {
	if x.Sign() >= 0 {
		b := x.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// Negative: 2^(8n) + x with the smallest n whose top bit is set, that
	// is the smallest n with x >= -2^(8n-1). BitLen of |x| overcounts by
	// one for x = -2^(8k-1) (-128 fits one byte as 0x80); ^x = -x-1 does not.
	n := (new(big.Int).Not(x).BitLen() + 8) / 8
	m := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), uint(8*n)), x)
	b := m.Bytes()
	for len(b) < n {
		b = append([]byte{0xff}, b...)
	}
	return b
}

// Partition is the partition of one row, as Iceberg values keyed by
// partition field ID, plus its directory path.
type Partition struct {
	Values map[int]any
	// Path is Iceberg's partition path (PartitionToPath) escaped once more
	// for use in a location URI: file IOs decode a location's percent
	// escapes, so the directory on disk is the partition path itself. Were
	// it used as it is, a value such as "/../../x" (escaped as
	// "%2F..%2F..%2Fx") would decode into directories outside the table.
	Path string
}

// Partition computes the partition of a row (once per open file, not per row).
func (p *Partitioner) Partition(row parquet.Row) (Partition, error) {
	values := make(map[int]any, len(p.fields))
	rec := make(partRecord, len(p.fields))
	for i := range p.fields {
		f := &p.fields[i]
		v := p.value(row, f.column)
		var val any
		if !v.IsNull() {
			switch f.transform {
			case "identity":
				switch f.kind {
				case schema.KindString:
					val = string(v.ByteArray())
				case schema.KindBinary:
					// Never nil: a nil slice is written to the manifest as a
					// null partition value, not as empty bytes.
					val = append([]byte{}, v.ByteArray()...)
				case schema.KindBool:
					val = v.Boolean()
				case schema.KindInt32:
					val = v.Int32()
				case schema.KindInt64:
					val = v.Int64()
				case schema.KindDate:
					val = iceberg.Date(v.Int32())
				case schema.KindTimestamp, schema.KindTimestampTZ:
					val = iceberg.Timestamp(v.Int64())
				default:
					return Partition{}, fmt.Errorf("identity partition on %v is not supported", f.kind)
				}
			case "day":
				val = iceberg.Date(p.transformInt(f, v))
			default:
				val = p.transformInt(f, v)
			}
		}
		values[f.id] = val
		rec[i] = val
	}
	var path string
	if p.hive {
		path = p.hivePath(rec)
	} else {
		path = p.spec.PartitionToPath(rec, p.schema)
	}
	return Partition{Values: values, Path: strings.ReplaceAll(path, "%", "%25")}, nil
}

// Hive returns a partitioner whose paths are Hive-style directories, for
// readers that find partitions by directory name rather than through
// Iceberg metadata: hour(ts) is dt=2026-11-23/hour=07, day(ts)
// dt=2026-11-23, month(ts) month=2026-11, year(ts) year=2026,
// identity(c) c=<value>, bucket(N, c) c_bucket=<n>.
func (p *Partitioner) Hive() *Partitioner {
	h := *p
	h.hive = true
	return &h
}

// HiveDefaultPartition is the directory value of a null, as Hive names it.
const HiveDefaultPartition = "__HIVE_DEFAULT_PARTITION__"

func (p *Partitioner) hivePath(rec partRecord) string {
	var b strings.Builder
	for i := range p.fields {
		f := &p.fields[i]
		if i > 0 {
			b.WriteByte('/')
		}
		v := rec[i]
		if v == nil {
			name := f.name
			switch f.transform {
			case "hour", "day":
				name = "dt"
			case "month", "year":
				name = f.transform
			case "bucket":
				name += "_bucket"
			}
			b.WriteString(hiveEscape(name) + "=" + HiveDefaultPartition)
			continue
		}
		switch f.transform {
		case "hour":
			b.WriteString(HiveTimeDir("hour", time.Unix(int64(v.(int32))*3600, 0)))
		case "day":
			b.WriteString(HiveTimeDir("day", time.Unix(int64(v.(iceberg.Date))*86400, 0)))
		case "month":
			m := int(v.(int32))
			b.WriteString(HiveTimeDir("month", time.Date(1970+floorDivInt(m, 12), time.Month(m-floorDivInt(m, 12)*12+1), 1, 0, 0, 0, 0, time.UTC)))
		case "year":
			b.WriteString(HiveTimeDir("year", time.Date(1970+int(v.(int32)), 1, 1, 0, 0, 0, 0, time.UTC)))
		case "bucket":
			fmt.Fprintf(&b, "%s_bucket=%d", hiveEscape(f.name), v.(int32))
		default:
			b.WriteString(hiveEscape(f.name) + "=" + hiveEscape(hiveValue(v)))
		}
	}
	return b.String()
}

// HiveTimeDir is the Hive-style directory of the time partition (unit
// hour, day, month or year) that starts at start.
func HiveTimeDir(unit string, start time.Time) string {
	start = start.UTC()
	switch unit {
	case "hour":
		return start.Format("dt=2006-01-02/hour=15")
	case "day":
		return start.Format("dt=2006-01-02")
	case "month":
		return start.Format("month=2006-01")
	}
	return start.Format("year=2006")
}

func floorDivInt(a, b int) int { return int(floorDiv(int64(a), int64(b))) }

// hiveValue renders an identity partition value as Hive writes it.
func hiveValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case iceberg.Date:
		return time.Unix(int64(v)*86400, 0).UTC().Format("2006-01-02")
	case iceberg.Timestamp:
		return time.UnixMicro(int64(v)).UTC().Format("2006-01-02 15:04:05.999999")
	}
	return fmt.Sprint(v)
}

// hiveEscape escapes what Hive escapes in partition directory names:
// control characters and "#%'*/:=?\{[]^ (as %XX), so a value never
// splits a path or reads as another key.
func hiveEscape(s string) string {
	const special = "\"#%'*/:=?\\{[]^\x7f"
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || strings.ContainsRune(special, r) }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || strings.IndexByte(special, c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

type partRecord []any

func (r partRecord) Size() int        { return len(r) }
func (r partRecord) Get(i int) any    { return r[i] }
func (r partRecord) Set(i int, v any) { r[i] = v }

// PartitionExprs returns the table.partition expressions of a table's
// current spec, e.g. ["hour(ts)", "bucket(4, user)"].
func PartitionExprs(tbl *table.Table) ([]string, error) {
	spec, sch := tbl.Spec(), tbl.Schema()
	var out []string
	for i := range spec.NumFields() {
		f := spec.Field(i)
		col, ok := sch.FindColumnName(f.SourceID())
		if !ok {
			return nil, fmt.Errorf("partition field %s: no column with id %d", f.Name, f.SourceID())
		}
		switch t := f.Transform.(type) {
		case iceberg.BucketTransform:
			out = append(out, fmt.Sprintf("bucket(%d, %s)", t.NumBuckets, col))
		default:
			out = append(out, fmt.Sprintf("%s(%s)", f.Transform.String(), col))
		}
	}
	return out, nil
}
