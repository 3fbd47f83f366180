package cdc

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/cdc/mariadbtest"
)

// memSink keeps mirrors in memory, committing each checkpoint at once;
// its progress outlives a Mirror, as a table's does.
type memSink struct {
	mu      sync.Mutex
	targets map[string]*memTarget
}

type memTarget struct {
	mu        sync.Mutex
	cols      []Column
	key       []string
	buffered  map[string][]string // key → row; nil row: deleted
	committed map[string][]string
	progress  Progress
	evolved   int
}

func (s *memSink) Open(_ context.Context, src TableInfo) (Target, Progress, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := src.Schema + "." + src.Table
	t := s.targets[name]
	if t == nil {
		t = &memTarget{cols: slices.Clone(src.Columns), key: src.Key, committed: map[string][]string{}}
		for i := range t.cols {
			t.cols[i].conv = nil
		}
		s.targets[name] = t
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buffered = map[string][]string{}
	p := t.progress
	p.Columns = slices.Clone(t.cols)
	return t, p, nil
}

func (t *memTarget) text(values []parquet.Value) (key string, row []string) {
	for i, v := range values {
		s := "∅"
		if !v.IsNull() {
			s = v.String()
		}
		row = append(row, s)
		if slices.Contains(t.key, t.cols[i].Name) {
			key += s + "|"
		}
	}
	return key, row
}

func (t *memTarget) Put(values []parquet.Value, _ int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	k, row := t.text(values)
	t.buffered[k] = row
	return nil
}

func (t *memTarget) Delete(values []parquet.Value) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	k, _ := t.text(values)
	t.buffered[k] = nil
	return nil
}

func (t *memTarget) Buffered() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.buffered)
}

func (t *memTarget) Checkpoint(_ context.Context, at Position, snap SnapshotProgress) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, row := range t.buffered {
		if row == nil {
			delete(t.committed, k)
		} else {
			t.committed[k] = row
		}
	}
	clear(t.buffered)
	t.progress.Position, t.progress.Snapshot = at, snap
	return nil
}

func (t *memTarget) Evolve(_ context.Context, cols []Column, renamed map[string]string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buffered) > 0 {
		return fmt.Errorf("evolve with %d changes buffered", len(t.buffered))
	}
	// Rows committed before gain nulls for the new columns.
	for k, row := range t.committed {
		for len(row) < len(cols) {
			row = append(row, "∅")
		}
		t.committed[k] = row
	}
	t.cols = slices.Clone(cols)
	t.evolved++
	return nil
}

func (t *memTarget) Wait(context.Context) error { return nil }

func (t *memTarget) state() (Position, map[string][]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.progress.Position, maps.Clone(t.committed)
}

// sourceState reads a table whole, through a snapshot read, in memTarget's
// form.
func sourceState(t *testing.T, db *mariadbtest.Server, schema, table string, cols []Column) map[string][]string {
	t.Helper()
	conn, err := db.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Execute("SET time_zone = '+00:00'"); err != nil {
		t.Fatal(err)
	}
	info, err := DescribeTable(conn, schema, table)
	if err != nil {
		t.Fatal(err)
	}
	mt := &memTarget{cols: cols, key: info.Key}
	tb := &mtable{info: info, cols: cols}
	if err := tb.setColumns(cols); err != nil {
		t.Fatal(err)
	}
	sh, _, err := tb.mapColumns(info.Columns)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var after Cursor
	for {
		rows, last, err := ReadChunk(conn, info, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			vals := make([]parquet.Value, len(cols))
			if err := tb.values(sh, r, vals); err != nil {
				t.Fatal(err)
			}
			k, row := mt.text(vals)
			out[k] = row
		}
		if len(rows) < 1000 {
			return out
		}
		after = last
	}
}

// TestMirrorSnapshotThenLog mirrors a table whose rows change while its
// snapshot reads it in small chunks, restarts the mirror midway, changes
// its columns, and checks the mirror equals the table each time it caught
// up with the log.
func TestMirrorSnapshotThenLog(t *testing.T) {
	db := mariadbtest.Start(t)
	db.Exec(t, "CREATE DATABASE d",
		"CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(20), n INT)",
		"INSERT INTO d.t SELECT seq, CONCAT('v', seq), seq FROM d.seq_1_to_5000")
	sink := &memSink{targets: map[string]*memTarget{}}
	cfg := MirrorConfig{
		Source:   Config{Name: "src", Host: db.Host, Port: db.Port, User: "root", Flavor: "mariadb", ServerID: 77, Tables: []string{"d.*"}},
		Interval: 50 * time.Millisecond, Snapshot: true, ChunkRows: 97, Parallelism: 2, MaxBuffered: 500,
		ReconnectTimeout: 10 * time.Second, IdleCheckpoints: 1,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	change := func(n int) {
		conn, err := db.Connect()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		for range n {
			id := 1 + rng.IntN(6000)
			var q string
			switch rng.IntN(4) {
			case 0:
				q = fmt.Sprintf("INSERT INTO d.t (id, n) VALUES (%d, %d) ON DUPLICATE KEY UPDATE n = VALUES(n)", id, rng.IntN(1000))
			case 1:
				q = fmt.Sprintf("DELETE FROM d.t WHERE id = %d", id)
			case 2:
				q = fmt.Sprintf("UPDATE IGNORE d.t SET id = %d WHERE id = %d", 6000+rng.IntN(4000), id)
			default:
				q = fmt.Sprintf("UPDATE d.t SET n = n + 1 WHERE id BETWEEN %d AND %d", id, id+50)
			}
			if _, err := conn.Execute(q); err != nil {
				t.Error(err)
				return
			}
		}
	}
	run := func(changes int, ddl string) {
		t.Helper()
		m, err := NewMirror(cfg, sink, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		change(changes)
		if ddl != "" {
			db.Exec(t, ddl)
			change(changes)
		}
		file, pos := db.Position(t)
		end := Position{file, pos}
		deadline := time.Now().Add(30 * time.Second)
		for {
			tgt := sink.targets["d.t"]
			if tgt != nil {
				tgt.mu.Lock()
				done := tgt.progress.Position == end && tgt.progress.Snapshot.Done
				tgt.mu.Unlock()
				if done {
					break
				}
			}
			select {
			case err := <-done:
				t.Fatalf("mirror stopped: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("mirror did not reach %s", end)
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		tgt := sink.targets["d.t"]
		_, got := tgt.state()
		want := sourceState(t, db, "d", "t", tgt.cols)
		if !maps.EqualFunc(got, want, slices.Equal) {
			var diff []string
			for k, w := range want {
				if g := got[k]; !slices.Equal(g, w) {
					diff = append(diff, fmt.Sprintf("%s: mirror %v, source %v", k, g, w))
				}
			}
			for k, g := range got {
				if _, ok := want[k]; !ok {
					diff = append(diff, fmt.Sprintf("%s: mirror %v, not in source", k, g))
				}
			}
			slices.Sort(diff)
			t.Fatalf("mirror differs from source in %d rows:\n%s", len(diff), strings.Join(diff[:min(10, len(diff))], "\n"))
		}
	}
	run(300, "")
	if !sink.targets["d.t"].progress.Snapshot.Done {
		t.Fatal("snapshot not done")
	}
	run(300, "ALTER TABLE d.t ADD COLUMN w VARCHAR(5), MODIFY n BIGINT, RENAME COLUMN v TO v2")
	tgt := sink.targets["d.t"]
	if tgt.evolved == 0 {
		t.Error("columns did not evolve")
	}
	var names []string
	for _, c := range tgt.cols {
		names = append(names, c.Name+" "+c.Type.String())
	}
	if got, want := strings.Join(names, ", "), "id int32, v2 string, n int64, w string"; got != want {
		t.Errorf("columns after the DDL: %s, want %s", got, want)
	}

	// A change the mirror cannot follow stops its table alone, at the
	// position before it; the other table goes on.
	db.Exec(t, "CREATE TABLE d.u (id INT PRIMARY KEY, v VARCHAR(10))", "INSERT INTO d.u VALUES (1, '1'), (2, '2')")
	run(50, "")
	before := sink.targets["d.u"].progress.Position
	db.Exec(t, "ALTER TABLE d.u MODIFY v BLOB", "INSERT INTO d.u VALUES (3, '3')")
	run(100, "")
	u := sink.targets["d.u"]
	if u.progress.Position.Compare(before) < 0 {
		t.Errorf("stopped table went back from %s to %s", before, u.progress.Position)
	}
	_, rows := u.state()
	if len(rows) != 2 {
		t.Errorf("stopped table holds %d rows, want the 2 from before the change", len(rows))
	}
	file, pos := db.Position(t)
	if u.progress.Position == (Position{file, pos}) {
		t.Error("stopped table's position moved to the log's end")
	}
}
