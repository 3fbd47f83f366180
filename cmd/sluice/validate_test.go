package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validateGoodConfig = `name: shop
kafka:
  brokers: [localhost:9092]
catalog:
  uri: /var/lib/sluice/catalog.db
  warehouse: file:///var/lib/sluice/warehouse
dead_letter:
  file: /var/lib/sluice/dead-letters.jsonl
streams:
  - name: orders
    topics: [orders]
    event_time: placed_at
    columns:
      - {name: order_id, type: string, required: true}
      - {name: placed_at, type: timestamptz(ms), required: true}
    table:
      name: shop.orders
      partition: [day(placed_at)]
  - name: clicks
    topic_regex: ^clicks\.
    event_time: ts
    columns:
      - {name: ts, type: timestamptz(ms), required: true}
    table:
      name: shop.clicks
`

// validateBadConfig has one problem in several sections; validate must list
// them all.
const validateBadConfig = `name: shop
kafka:
  brokers: [localhost]
catalog:
  warehouse: file:///var/lib/sluice/warehouse
checkpoint:
  interval: 10ms
dead_letter:
  file: /var/lib/sluice/dead-letters.jsonl
streams:
  - name: orders
    topics: [orders]
    event_time: placed_at
    columns:
      - {name: order_id, type: strng}
      - {name: placed_at, type: timestamptz(ms)}
    table:
      name: orders
`

// writeValidateConfig writes a config file into a fresh directory and returns
// its path.
func writeValidateConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestValidateCmd(t *testing.T) {
	good := writeValidateConfig(t, validateGoodConfig)
	bad := writeValidateConfig(t, validateBadConfig)
	unknownKey := writeValidateConfig(t, strings.Replace(validateGoodConfig, "    columns:", "    colums:", 1))
	for _, tc := range []struct {
		name    string
		args    []string
		wantOut string   // substring of the output; empty means no output
		wantErr []string // substrings of the error, in order; nil means success
	}{
		{
			name:    "valid",
			args:    []string{"-c", good},
			wantOut: good + ` is valid: pipeline "shop", 2 stream(s)` + "\n",
		},
		{
			name: "every problem with its key path",
			args: []string{"-c", bad},
			wantErr: []string{
				bad + " is invalid:",
				"\n  kafka.brokers[0]: ",
				"\n  catalog.uri: ",
				"\n  checkpoint.interval: ",
				"\n  streams[0].columns[0].type: ",
			},
		},
		{
			name:    "unknown key with its line",
			args:    []string{"-c", unknownKey},
			wantErr: []string{unknownKey + " is invalid:\n", "  streams[0].colums: unknown key (line 13)"},
		},
		{
			name:    "missing file",
			args:    []string{"-c", filepath.Join(t.TempDir(), "nope.yaml")},
			wantErr: []string{"nope.yaml is invalid:", "read config:", "no such file"},
		},
		{
			name:    "no -c",
			args:    nil,
			wantErr: []string{"-c pipeline.yaml is required"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := validateCmd(tc.args, &out)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("validateCmd(%q): %v", tc.args, err)
				}
			} else {
				if err == nil {
					t.Fatalf("validateCmd(%q) succeeded with output %q, want an error", tc.args, out.String())
				}
				msg := err.Error()
				rest := msg
				for _, w := range tc.wantErr {
					i := strings.Index(rest, w)
					if i < 0 {
						t.Fatalf("validateCmd(%q) error does not contain %q (in order):\n%s", tc.args, w, msg)
					}
					rest = rest[i+len(w):]
				}
			}
			if got := out.String(); tc.wantOut == "" && got != "" || !strings.Contains(got, tc.wantOut) {
				t.Errorf("validateCmd(%q) printed %q, want %q", tc.args, got, tc.wantOut)
			}
		})
	}
}

// TestValidateCmdFlags checks that -h reaches main as flag.ErrHelp (exit 2,
// no "sluice validate:" error line) and that unknown flags fail.
func TestValidateCmdFlags(t *testing.T) {
	if err := validateCmd([]string{"-h"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("validateCmd(-h) = %v, want flag.ErrHelp", err)
	}
	if err := validateCmd([]string{"--config", "x.yaml"}, &bytes.Buffer{}); err == nil {
		t.Error("validateCmd(--config x.yaml) succeeded, want an unknown flag error")
	}
}
