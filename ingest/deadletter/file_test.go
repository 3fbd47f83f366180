package deadletter

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// openTestFile opens a dead-letter file in a temporary directory and closes
// it at the end of the test.
func openTestFile(t *testing.T, maxValueBytes int) (*File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dead", "letters.jsonl")
	f, err := OpenFile(path, maxValueBytes)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

// readLines decodes every line of a dead-letter file.
func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", len(out)+1, err, sc.Bytes())
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		t.Errorf("file does not end with a newline")
	}
	return out
}

func TestFilePut(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.FixedZone("x", 3600))
	binary := []byte{0xff, 0x00, 0xfe, 'a'}
	tests := []struct {
		name     string
		max      int
		entry    Entry
		want     map[string]any // fields besides time
		wantData []byte         // decoded value, checked against value_encoding
	}{
		{
			name: "all fields",
			max:  1 << 20,
			entry: Entry{
				Stream: "orders", Topic: "orders-v1", Partition: 3, Offset: 12345, Timestamp: ts,
				Key: []byte("k\x001"), Value: []byte(`{"id":1,"name":"é"}`), Stage: "parse", Reason: "field id: expected string, got number",
			},
			want: map[string]any{
				"stream": "orders", "stage": "parse", "reason": "field id: expected string, got number",
				"topic": "orders-v1", "partition": 3.0, "offset": 12345.0, "timestamp": "2024-05-06T06:08:09.123456Z",
				"key": base64.StdEncoding.EncodeToString([]byte("k\x001")), "value": `{"id":1,"name":"é"}`,
				"value_encoding": "utf8", "value_bytes": 20.0, // bytes, not runes
			},
			wantData: []byte(`{"id":1,"name":"é"}`),
		},
		{
			name:  "no key, no timestamp, empty value",
			max:   1 << 20,
			entry: Entry{Stream: "s", Topic: "t", Stage: "etl", Reason: "r"},
			want: map[string]any{
				"stream": "s", "stage": "etl", "reason": "r", "topic": "t", "partition": 0.0, "offset": 0.0,
				"value": "", "value_encoding": "utf8", "value_bytes": 0.0,
			},
			wantData: []byte{},
		},
		{
			name:  "binary value is base64",
			max:   1 << 20,
			entry: Entry{Stream: "s", Topic: "t", Partition: 1, Offset: 2, Value: binary, Stage: "parse", Reason: "not JSON"},
			want: map[string]any{
				"stream": "s", "stage": "parse", "reason": "not JSON", "topic": "t", "partition": 1.0, "offset": 2.0,
				"value": base64.StdEncoding.EncodeToString(binary), "value_encoding": "base64", "value_bytes": 4.0,
			},
			wantData: binary,
		},
		{
			name:  "truncated at max bytes",
			max:   8,
			entry: Entry{Stream: "s", Topic: "t", Value: []byte("0123456789abcdef"), Stage: "parse", Reason: "too big"},
			want: map[string]any{
				"stream": "s", "stage": "parse", "reason": "too big", "topic": "t", "partition": 0.0, "offset": 0.0,
				"value": "01234567", "value_encoding": "utf8", "value_bytes": 16.0, "truncated": true,
			},
			wantData: []byte("01234567"),
		},
		{
			name:  "exactly max bytes is not truncated",
			max:   4,
			entry: Entry{Stream: "s", Topic: "t", Value: []byte("abcd"), Stage: "parse", Reason: "r"},
			want: map[string]any{
				"stream": "s", "stage": "parse", "reason": "r", "topic": "t", "partition": 0.0, "offset": 0.0,
				"value": "abcd", "value_encoding": "utf8", "value_bytes": 4.0,
			},
			wantData: []byte("abcd"),
		},
		{
			name:  "truncated binary",
			max:   2,
			entry: Entry{Stream: "s", Topic: "t", Value: binary, Stage: "parse", Reason: "r"},
			want: map[string]any{
				"stream": "s", "stage": "parse", "reason": "r", "topic": "t", "partition": 0.0, "offset": 0.0,
				"value": base64.StdEncoding.EncodeToString(binary[:2]), "value_encoding": "base64", "value_bytes": 4.0,
				"truncated": true,
			},
			wantData: binary[:2],
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, path := openTestFile(t, tt.max)
			before := time.Now().Add(-time.Second)
			if err := f.Put(context.Background(), tt.entry); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if err := f.Flush(context.Background()); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			lines := readLines(t, path)
			if len(lines) != 1 {
				t.Fatalf("%d lines, want 1", len(lines))
			}
			got := lines[0]
			at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got["time"]))
			if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
				t.Errorf("time = %v (%v), want about now in RFC 3339", got["time"], err)
			}
			delete(got, "time")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("line:\n got %v\nwant %v", got, tt.want)
			}
			data := []byte(got["value"].(string))
			if got["value_encoding"] == "base64" {
				if data, err = base64.StdEncoding.DecodeString(got["value"].(string)); err != nil {
					t.Fatalf("value is not base64: %v", err)
				}
			}
			if string(data) != string(tt.wantData) {
				t.Errorf("decoded value = %q, want %q", data, tt.wantData)
			}
		})
	}
}

// TestFileBuffersUntilFlush: Put only buffers; Flush makes entries visible.
func TestFileBuffersUntilFlush(t *testing.T) {
	f, path := openTestFile(t, 1<<20)
	if err := f.Put(context.Background(), Entry{Stream: "s", Topic: "t", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(path); len(raw) != 0 {
		t.Errorf("file holds %q before Flush", raw)
	}
	if err := f.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(readLines(t, path)); n != 1 {
		t.Errorf("%d lines after Flush, want 1", n)
	}
}

// TestFileAppends: reopening a file appends to it, and Close flushes.
func TestFileAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "dl.jsonl")
	for i := range 3 {
		f, err := OpenFile(path, 1<<20)
		if err != nil {
			t.Fatalf("OpenFile #%d: %v", i, err)
		}
		if err := f.Put(context.Background(), Entry{Stream: "s", Topic: "t", Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i, err)
		}
	}
	lines := readLines(t, path)
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3", len(lines))
	}
	for i, l := range lines {
		if l["offset"] != float64(i) {
			t.Errorf("line %d has offset %v", i, l["offset"])
		}
	}
}

func TestOpenFileError(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The parent "directory" is a file.
	if _, err := OpenFile(filepath.Join(blocker, "dl.jsonl"), 10); err == nil || !strings.Contains(err.Error(), "dead-letter file") {
		t.Errorf("OpenFile under a file: error = %v", err)
	}
}

// TestFileConcurrentPuts: workers share one file; every entry comes out as a
// whole line of its own.
func TestFileConcurrentPuts(t *testing.T) {
	const writers, each = 8, 250
	f, path := openTestFile(t, 64)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				// Values of different sizes, some truncated, some binary.
				v := []byte(strings.Repeat(fmt.Sprintf("w%d-%d;", w, i), i%20))
				if i%7 == 0 {
					v = append(v, 0xff)
				}
				e := Entry{Stream: "s", Topic: fmt.Sprintf("t%d", w), Partition: int32(w), Offset: int64(i), Value: v, Stage: "parse", Reason: "r"}
				if err := f.Put(context.Background(), e); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				if i%50 == 0 {
					if err := f.Flush(context.Background()); err != nil {
						t.Errorf("Flush: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := f.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != writers*each {
		t.Fatalf("%d lines, want %d", len(lines), writers*each)
	}
	seen := map[[2]int]bool{}
	for _, l := range lines {
		k := [2]int{int(l["partition"].(float64)), int(l["offset"].(float64))}
		if seen[k] {
			t.Errorf("entry %v written twice", k)
		}
		seen[k] = true
		if l["topic"] != fmt.Sprintf("t%d", k[0]) {
			t.Errorf("entry %v has topic %v: lines mixed up", k, l["topic"])
		}
	}
}
