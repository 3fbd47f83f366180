package iceberg

import (
	"context"
	"fmt"
	"strings"
	"unsafe"

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

	// changes holds each key's last change, in first-change order; index
	// finds a key's.
	changes []upsert
	index   map[string]int
	buf     []byte
	arena   arena
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
	u := &Upserts{tbl: tbl, layout: layout, opts: opts, index: map[string]int{}}
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
	u.buf = u.buf[:0]
	for _, n := range u.key {
		v, ok := valueOf(row, n.Column)
		if !ok || v.IsNull() {
			return fmt.Errorf("key column %s is null", n.Field.Name)
		}
		u.buf = schema.AppendKeyValue(u.buf, v)
	}
	i, seen := u.index[string(u.buf)] // no allocation for the lookup
	if !seen {
		var c upsert
		// A key's values are kept once, with its first change.
		c.keyRow = u.arena.values(len(u.key))
		for i, n := range u.key {
			v, _ := valueOf(row, n.Column)
			c.keyRow[i] = u.arena.value(v).Level(0, 0, u.keyL.ByName[n.Field.Name].Column)
		}
		sortRow(c.keyRow)
		i = len(u.changes)
		u.changes = append(u.changes, c)
		u.index[string(u.buf)] = i
	}
	c := &u.changes[i]
	c.eventTime, c.row = eventTime, nil
	if !deleted {
		c.row = u.arena.row(row)
	}
	return nil
}

// arena holds a checkpoint's row values and their bytes in large blocks,
// so buffering a change costs no allocation of its own; the blocks are
// dropped together after Seal. A block is never grown in place: values
// handed out keep pointing into it.
type arena struct {
	vals  []parquet.Value
	bytes []byte
}

const arenaBlock = 64 << 10

func (a *arena) values(n int) []parquet.Value {
	if cap(a.vals)-len(a.vals) < n {
		a.vals = make([]parquet.Value, 0, max(arenaBlock/int(unsafe.Sizeof(parquet.Value{})), n))
	}
	start := len(a.vals)
	a.vals = a.vals[:start+n]
	return a.vals[start : start+n : start+n]
}

// value copies v's bytes, if any, into the arena.
func (a *arena) value(v parquet.Value) parquet.Value {
	if v.IsNull() {
		return v
	}
	var b []byte
	switch v.Kind() {
	case parquet.ByteArray, parquet.FixedLenByteArray:
		b = v.ByteArray()
	default:
		return v
	}
	if cap(a.bytes)-len(a.bytes) < len(b) {
		a.bytes = make([]byte, 0, max(arenaBlock, len(b)))
	}
	start := len(a.bytes)
	a.bytes = append(a.bytes, b...)
	cp := a.bytes[start:len(a.bytes):len(a.bytes)]
	if v.Kind() == parquet.FixedLenByteArray {
		return parquet.FixedLenByteArrayValue(cp).Level(v.RepetitionLevel(), v.DefinitionLevel(), v.Column())
	}
	return parquet.ByteArrayValue(cp).Level(v.RepetitionLevel(), v.DefinitionLevel(), v.Column())
}

func (a *arena) row(r parquet.Row) parquet.Row {
	out := a.values(len(r))
	for i, v := range r {
		out[i] = a.value(v)
	}
	return out
}

// SetRunID names the files of the next Seal apart from earlier ones.
func (u *Upserts) SetRunID(id string) { u.opts.RunID = id }

// Len is the number of keys changed since the last Seal.
func (u *Upserts) Len() int { return len(u.changes) }

// Seal writes the collapsed changes and returns the data files and the
// equality-delete files to commit together (both empty without changes).
func (u *Upserts) Seal(ctx context.Context) (data, deletes []iceberg.DataFile, err error) {
	if len(u.changes) == 0 {
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
	for _, c := range u.changes {
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
	// The next checkpoint reuses the index and the list; the arena's
	// blocks go with the rows written.
	clear(u.changes)
	u.changes = u.changes[:0]
	clear(u.index)
	u.arena = arena{}
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

func sortRow(row parquet.Row) {
	for i := 1; i < len(row); i++ {
		for j := i; j > 0 && row[j].Column() < row[j-1].Column(); j-- {
			row[j], row[j-1] = row[j-1], row[j]
		}
	}
}
