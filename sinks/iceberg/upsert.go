package iceberg

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

// Upserts collapses one checkpoint's changes of a table with a primary key
// and writes them merge-on-read: a data file of the rows each changed key
// ends with, and an equality-delete file of every key changed. Committed
// together as one row delta, the deletes remove the keys' older versions
// (in earlier snapshots) and not the rows added beside them, which share
// their sequence number. Changes of one key collapse in the order given:
// the last one wins, a delete leaves only the delete.
//
// The table must be unpartitioned: an equality delete only reaches data
// files of its own partition, and a key's row may move between partitions.
type Upserts struct {
	tbl    *table.Table
	layout *schema.Layout
	key    []*schema.Node
	keyL   *schema.Layout // the key columns alone, for the delete files
	opts   WriterOptions

	order []string // keys in first-change order
	last  map[string]upsert
	buf   []byte
}

type upsert struct {
	row       parquet.Row // nil: deleted
	keyRow    parquet.Row // the key's values, laid out for keyL
	eventTime int64
}

// NewUpserts prepares a table's upserts; keyColumns are its primary key,
// top-level primitive columns of layout.
func NewUpserts(tbl *table.Table, layout *schema.Layout, keyColumns []string, opts WriterOptions) (*Upserts, error) {
	name := strings.Join(tbl.Identifier(), ".")
	if spec := tbl.Spec(); spec.NumFields() > 0 {
		return nil, fmt.Errorf("table %s: upserts need an unpartitioned table", name)
	}
	if len(keyColumns) == 0 {
		return nil, fmt.Errorf("table %s: upserts need a primary key", name)
	}
	u := &Upserts{tbl: tbl, layout: layout, opts: opts, last: map[string]upsert{}}
	var keyFields []schema.Field
	for _, c := range keyColumns {
		n, ok := layout.ByName[c]
		if !ok || !n.Field.Type.IsPrimitive() {
			return nil, fmt.Errorf("table %s: key column %q is not a top-level primitive column", name, c)
		}
		u.key = append(u.key, n)
		f := n.Field
		f.Required = true // a key is never null
		keyFields = append(keyFields, f)
	}
	u.keyL = schema.NewLayout(schema.Schema{Fields: keyFields}, name+"_key")
	return u, nil
}

// Put records a row inserted or updated (its new version).
func (u *Upserts) Put(row parquet.Row, eventTime int64) error {
	return u.change(row, false, eventTime)
}

// Delete records a row deleted; row is its last version (only the key's
// values are used).
func (u *Upserts) Delete(row parquet.Row) error {
	return u.change(row, true, 0)
}

func (u *Upserts) change(row parquet.Row, deleted bool, eventTime int64) error {
	keyRow := make(parquet.Row, len(u.key))
	u.buf = u.buf[:0]
	for i, n := range u.key {
		v, ok := valueOf(row, n.Column)
		if !ok || v.IsNull() {
			return fmt.Errorf("key column %s is null", n.Field.Name)
		}
		u.buf = appendKeyValue(u.buf, v)
		keyRow[i] = v.Clone().Level(0, 0, u.keyL.ByName[n.Field.Name].Column)
	}
	sortRow(keyRow)
	k := string(u.buf)
	if _, seen := u.last[k]; !seen {
		u.order = append(u.order, k)
	}
	c := upsert{keyRow: keyRow, eventTime: eventTime}
	if !deleted {
		c.row = row.Clone()
	}
	u.last[k] = c
	return nil
}

// Len is the number of keys changed since the last Seal.
func (u *Upserts) Len() int { return len(u.order) }

// Seal writes the collapsed changes and returns the data files and the
// equality-delete files to commit together (both empty without changes).
func (u *Upserts) Seal(ctx context.Context) (data, deletes []iceberg.DataFile, err error) {
	if len(u.order) == 0 {
		return nil, nil, nil
	}
	part, err := NewPartitioner(nil, u.layout)
	if err != nil {
		return nil, nil, err
	}
	rows, err := NewWriter(ctx, u.tbl, u.layout, part, u.opts)
	if err != nil {
		return nil, nil, err
	}
	delOpts := u.opts
	delOpts.RunID += "-eqdel" // names apart from the data files'
	for _, n := range u.key {
		delOpts.EqualityFieldIDs = append(delOpts.EqualityFieldIDs, n.Field.ID)
	}
	keyPart, err := NewPartitioner(nil, u.keyL)
	if err != nil {
		return nil, nil, err
	}
	dels, err := NewWriter(ctx, u.tbl, u.keyL, keyPart, delOpts)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range u.order {
		c := u.last[k]
		if err := dels.Write(nil, c.keyRow, c.eventTime); err != nil {
			return nil, nil, err
		}
		if c.row != nil {
			if err := rows.Write(nil, c.row, c.eventTime); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := rows.Flush(); err != nil {
		return nil, nil, err
	}
	if err := dels.Flush(); err != nil {
		return nil, nil, err
	}
	if data, _, err = rows.Seal(); err != nil {
		return nil, nil, err
	}
	if deletes, _, err = dels.Seal(); err != nil {
		return nil, nil, err
	}
	u.order, u.last = u.order[:0], map[string]upsert{}
	return data, deletes, nil
}

func valueOf(row parquet.Row, col int) (parquet.Value, bool) {
	for _, v := range row {
		if v.Column() == col {
			return v, true
		}
	}
	return parquet.Value{}, false
}

// appendKeyValue encodes a key value so distinct values never encode
// alike: a kind byte, then fixed-width numbers or length-prefixed bytes.
func appendKeyValue(b []byte, v parquet.Value) []byte {
	b = append(b, byte(v.Kind()))
	switch v.Kind() {
	case parquet.Boolean:
		if v.Boolean() {
			return append(b, 1)
		}
		return append(b, 0)
	case parquet.Int32:
		return binary.BigEndian.AppendUint32(b, uint32(v.Int32()))
	case parquet.Int64:
		return binary.BigEndian.AppendUint64(b, uint64(v.Int64()))
	case parquet.Float:
		return binary.BigEndian.AppendUint32(b, math.Float32bits(v.Float()))
	case parquet.Double:
		return binary.BigEndian.AppendUint64(b, math.Float64bits(v.Double()))
	}
	raw := v.ByteArray()
	b = binary.AppendUvarint(b, uint64(len(raw)))
	return append(b, raw...)
}

func sortRow(row parquet.Row) {
	for i := 1; i < len(row); i++ {
		for j := i; j > 0 && row[j].Column() < row[j-1].Column(); j-- {
			row[j], row[j-1] = row[j-1], row[j]
		}
	}
}
