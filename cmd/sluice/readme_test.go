package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/ingest/config"
)

// TestReadmePipelinesAreValid checks every complete pipeline the README
// shows: an example that does not load teaches the wrong thing.
func TestReadmePipelinesAreValid(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_KAFKA_PASSWORD", "x")
	t.Setenv("SLUICE_CATALOG_PASSWORD", "x")
	t.Setenv("SLUICE_MYSQL_PASSWORD", "x")
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(raw), -1)
	n := 0
	for _, b := range blocks {
		text := b[1]
		if !strings.HasPrefix(text, "name:") || !strings.Contains(text, "\nstreams:") && !strings.Contains(text, "\ncdc:") {
			continue // a fragment
		}
		n++
		if _, err := config.Parse([]byte(text)); err != nil {
			t.Errorf("README pipeline starting %q is invalid: %v", strings.SplitN(text, "\n", 2)[0], err)
		}
	}
	if n == 0 {
		t.Fatal("no complete pipeline found in the README")
	}
}
