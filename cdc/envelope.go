package cdc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Change is one row change as a CDC tool publishes it to Kafka (Canal or
// Debezium JSON): the values keep their JSON form, numbers as json.Number
// so no precision is lost, for the stream's columns to type.
type Change struct {
	// ID identifies the change across re-deliveries: equal IDs are one
	// change delivered twice.
	ID            string
	Op            Op
	Schema, Table string
	Before, After map[string]any
	// TsMs is when the change happened in the source (milliseconds).
	TsMs int64
	// seq orders changes of equal TsMs: the numeric parts of ID.
	seq []int64
	// Ref is the caller's, for finding what it keeps beside a change after
	// Arrange.
	Ref int
}

// ErrNotRowChange marks an envelope that carries no row change (a DDL, a
// heartbeat, a tombstone); it is skipped, not dead-lettered.
var ErrNotRowChange = errors.New("not a row change")

func decode(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

// DecodeCanal reads a Canal flat-message JSON: one change per element of
// "data" (with "old" holding the changed columns' previous values for
// updates). Its ID is the message id and the element's index.
func DecodeCanal(data []byte) ([]Change, error) {
	var m struct {
		ID       json.Number      `json:"id"`
		Database string           `json:"database"`
		Table    string           `json:"table"`
		Type     string           `json:"type"`
		IsDDL    bool             `json:"isDdl"`
		Es       json.Number      `json:"es"`
		Data     []map[string]any `json:"data"`
		Old      []map[string]any `json:"old"`
	}
	if err := decode(data, &m); err != nil {
		return nil, fmt.Errorf("canal: %w", err)
	}
	if m.IsDDL {
		return nil, ErrNotRowChange
	}
	var op Op
	switch strings.ToUpper(m.Type) {
	case "INSERT":
		op = Insert
	case "UPDATE":
		op = Update
	case "DELETE":
		op = Delete
	default:
		return nil, fmt.Errorf("canal: type %q is not INSERT, UPDATE or DELETE", m.Type)
	}
	id, err := m.ID.Int64()
	if err != nil {
		return nil, fmt.Errorf("canal: id %q: %w", m.ID, err)
	}
	ts, err := m.Es.Int64()
	if err != nil {
		return nil, fmt.Errorf("canal: es %q: %w", m.Es, err)
	}
	if m.Database == "" || m.Table == "" {
		return nil, errors.New("canal: database and table are required")
	}
	if len(m.Data) == 0 {
		return nil, errors.New("canal: no data")
	}
	if op == Update && len(m.Old) != len(m.Data) {
		return nil, fmt.Errorf("canal: update with %d rows and %d old values", len(m.Data), len(m.Old))
	}
	out := make([]Change, len(m.Data))
	for i, row := range m.Data {
		c := Change{ID: fmt.Sprintf("canal:%d:%d", id, i), Op: op, Schema: m.Database, Table: m.Table, TsMs: ts, seq: []int64{id, int64(i)}}
		switch op {
		case Insert:
			c.After = row
		case Delete:
			c.Before = row
		case Update:
			// "old" holds only the columns that changed.
			c.After, c.Before = row, make(map[string]any, len(row))
			for k, v := range row {
				c.Before[k] = v
			}
			for k, v := range m.Old[i] {
				c.Before[k] = v
			}
		}
		out[i] = c
	}
	return out, nil
}

// DecodeDebezium reads a Debezium change event, with or without its
// schema envelope ({"schema":…,"payload":…}). Snapshot reads ("r") are
// inserts. Its ID is the source's binlog file, position and row.
func DecodeDebezium(data []byte) (Change, error) {
	if len(bytes.TrimSpace(data)) == 0 || bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return Change{}, ErrNotRowChange // a tombstone
	}
	type payload struct {
		Before map[string]any `json:"before"`
		After  map[string]any `json:"after"`
		Op     string         `json:"op"`
		TsMs   json.Number    `json:"ts_ms"`
		Source struct {
			DB    string      `json:"db"`
			Table string      `json:"table"`
			TsMs  json.Number `json:"ts_ms"`
			File  string      `json:"file"`
			Pos   json.Number `json:"pos"`
			Row   json.Number `json:"row"`
			GTID  string      `json:"gtid"`
		} `json:"source"`
	}
	var env struct {
		payload
		Payload *payload `json:"payload"`
	}
	if err := decode(data, &env); err != nil {
		return Change{}, fmt.Errorf("debezium: %w", err)
	}
	p := env.payload
	if env.Payload != nil {
		p = *env.Payload
	}
	c := Change{Schema: p.Source.DB, Table: p.Source.Table, Before: p.Before, After: p.After}
	switch p.Op {
	case "c", "r":
		c.Op = Insert
	case "u":
		c.Op = Update
	case "d":
		c.Op = Delete
	case "":
		return Change{}, ErrNotRowChange // a schema change or heartbeat
	default:
		return Change{}, fmt.Errorf("debezium: op %q is not c, r, u or d", p.Op)
	}
	if c.Schema == "" || c.Table == "" {
		return Change{}, errors.New("debezium: source.db and source.table are required")
	}
	if (c.Op != Delete && c.After == nil) || (c.Op == Delete && c.Before == nil) {
		return Change{}, fmt.Errorf("debezium: op %q without its row", p.Op)
	}
	ts := p.Source.TsMs
	if ts == "" {
		ts = p.TsMs
	}
	var err error
	if c.TsMs, err = ts.Int64(); err != nil {
		return Change{}, fmt.Errorf("debezium: ts_ms %q: %w", ts, err)
	}
	pos, _ := p.Source.Pos.Int64()
	row, _ := p.Source.Row.Int64()
	file, _ := strconv.ParseInt(p.Source.File[strings.LastIndexByte(p.Source.File, '.')+1:], 10, 64)
	c.seq = []int64{file, pos, row}
	c.ID = fmt.Sprintf("debezium:%s:%s:%d:%d", p.Source.GTID, p.Source.File, pos, row)
	return c, nil
}

// Arrange drops re-delivered changes (equal IDs, first kept) and orders the
// rest by source time, then by their position in the source, the order in
// which they apply.
func Arrange(changes []Change) []Change {
	seen := make(map[string]bool, len(changes))
	out := changes[:0:0]
	for _, c := range changes {
		if seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		out = append(out, c)
	}
	slices.SortStableFunc(out, func(a, b Change) int {
		if a.TsMs != b.TsMs {
			if a.TsMs < b.TsMs {
				return -1
			}
			return 1
		}
		return slices.Compare(a.seq, b.seq)
	})
	return out
}
