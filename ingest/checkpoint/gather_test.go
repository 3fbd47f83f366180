package checkpoint

import (
	"reflect"
	"testing"

	"github.com/apache/iceberg-go"
)

// part is one worker's share of a checkpoint in a Gatherer script.
func part(cp int64, worker int, positions Positions, written int64) DataWritten {
	return DataWritten{
		Stream: "s", Checkpoint: cp, Worker: worker, Positions: positions,
		Counts: Counts{Read: written, Written: written}, MaxEventTime: cp*100 + int64(worker), Bytes: written * 10,
	}
}

func TestGatherer(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		last    int64
		parts   []DataWritten
		want    [][]int64 // checkpoints released after each part
	}{
		{
			name: "one worker releases each part", workers: 1, last: 0,
			parts: []DataWritten{part(1, 0, nil, 1), part(2, 0, nil, 1)},
			want:  [][]int64{{1}, {2}},
		},
		{
			name: "waits for every worker", workers: 3, last: 0,
			parts: []DataWritten{part(1, 2, nil, 1), part(1, 0, nil, 1), part(1, 1, nil, 1)},
			want:  [][]int64{nil, nil, {1}},
		},
		{
			name: "starts after last", workers: 1, last: 41,
			parts: []DataWritten{part(42, 0, nil, 1)},
			want:  [][]int64{{42}},
		},
		{
			// A fast worker may report later checkpoints before a slow one
			// reports an earlier one; they are released oldest first.
			name: "in order however parts arrive", workers: 2, last: 0,
			parts: []DataWritten{
				part(1, 0, nil, 1), part(2, 0, nil, 1), part(3, 0, nil, 1),
				part(2, 1, nil, 1), // 2 complete but 1 is not: nothing yet
				part(1, 1, nil, 1), // releases 1 and 2
				part(3, 1, nil, 1),
			},
			want: [][]int64{nil, nil, nil, nil, {1, 2}, {3}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGatherer(tt.workers, tt.last)
			if g.Last() != tt.last {
				t.Fatalf("Last() = %d, want %d", g.Last(), tt.last)
			}
			want := tt.last
			for i, p := range tt.parts {
				var got []int64
				for _, dw := range g.Add(p) {
					got = append(got, dw.Checkpoint)
					if dw.Counts.Written != int64(tt.workers) {
						t.Errorf("checkpoint %d merged %d parts' counts, want %d", dw.Checkpoint, dw.Counts.Written, tt.workers)
					}
				}
				if !reflect.DeepEqual(got, tt.want[i]) {
					t.Fatalf("after part %d (checkpoint %d, worker %d): released %v, want %v", i, p.Checkpoint, p.Worker, got, tt.want[i])
				}
				if len(got) > 0 {
					want = got[len(got)-1]
				}
				if g.Last() != want {
					t.Errorf("Last() = %d, want %d", g.Last(), want)
				}
			}
		})
	}
}

func TestMerge(t *testing.T) {
	file := func(path string) iceberg.DataFile {
		t.Helper()
		b, err := iceberg.NewDataFileBuilder(*iceberg.UnpartitionedSpec, iceberg.EntryContentData, path, iceberg.ParquetFile, nil, nil, nil, 1, 10)
		if err != nil {
			t.Fatal(err)
		}
		return b.Build()
	}
	a := DataWritten{
		Stream: "s", Checkpoint: 7, Worker: 0, Files: []iceberg.DataFile{file("a1"), file("a2")},
		Positions: Positions{"t": {0: 10, 2: 30}}, MaxEventTime: 500,
		Counts: Counts{Read: 5, Written: 3, DeadLettered: 1, Filtered: 1}, Bytes: 20,
	}
	b := DataWritten{
		Stream: "s", Checkpoint: 7, Worker: 1, Files: []iceberg.DataFile{file("b1")},
		Positions: Positions{"t": {1: 20}, "u": {0: 1}}, MaxEventTime: 900,
		Counts: Counts{Read: 2, Written: 2}, Bytes: 10,
	}
	idle := DataWritten{Stream: "s", Checkpoint: 7, Worker: 2, Positions: Positions{}}
	aPositions := a.Positions.Clone()

	got := Merge("s", 7, []DataWritten{a, idle, b})
	if got.Stream != "s" || got.Checkpoint != 7 {
		t.Errorf("merged %s/%d", got.Stream, got.Checkpoint)
	}
	var paths []string
	for _, f := range got.Files {
		paths = append(paths, f.FilePath())
	}
	if want := []string{"a1", "a2", "b1"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("files = %v, want %v", paths, want)
	}
	if want := (Positions{"t": {0: 10, 1: 20, 2: 30}, "u": {0: 1}}); !reflect.DeepEqual(got.Positions, want) {
		t.Errorf("positions = %v, want %v", got.Positions, want)
	}
	if got.MaxEventTime != 900 || got.Bytes != 30 {
		t.Errorf("max event time %d bytes %d, want 900 and 30", got.MaxEventTime, got.Bytes)
	}
	if want := (Counts{Read: 7, Written: 5, DeadLettered: 1, Filtered: 1}); got.Counts != want {
		t.Errorf("counts = %+v, want %+v", got.Counts, want)
	}
	// The merge owns its positions: later changes to it leave the parts alone.
	got.Positions.Set("t", 0, 99)
	if !reflect.DeepEqual(a.Positions, aPositions) {
		t.Errorf("changing the merged positions changed a part's: %v", a.Positions)
	}

	if empty := Merge("s", 8, nil); empty.Positions == nil || empty.Positions.Count() != 0 || len(empty.Files) != 0 {
		t.Errorf("Merge of no parts = %+v, want empty positions and no files", empty)
	}
}
