package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/ingest/schema"
)

// PartitionField is one parsed entry of table.partition.
type PartitionField struct {
	// Transform is identity, hour, day, month, year or bucket.
	Transform string
	// Column is the top-level output column it reads.
	Column string
	// Buckets is N of bucket(N, col).
	Buckets int
}

var partitionExpr = regexp.MustCompile(`^\s*([a-z]+)\s*\(\s*(?:(\d+)\s*,\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

// ParsePartitionField parses "hour(col)", "bucket(16, col)", "col", ... and
// checks it against the output schema.
func ParsePartitionField(expr string, out schema.Schema) (PartitionField, error) {
	pf, err := parsePartitionExpr(expr)
	if err != nil {
		return pf, err
	}
	f, ok := out.Field(pf.Column)
	if !ok {
		return pf, fmt.Errorf("%q: no output column %q", expr, pf.Column)
	}
	return pf, checkPartitionType(expr, pf, f.Type)
}

// parsePartitionExpr reads the transform and column of a partition field.
func parsePartitionExpr(expr string) (PartitionField, error) {
	var pf PartitionField
	if m := partitionExpr.FindStringSubmatch(expr); m != nil {
		pf.Transform, pf.Column = m[1], m[3]
		if m[2] != "" {
			if pf.Transform != "bucket" {
				return pf, fmt.Errorf("%q: only bucket takes a number", expr)
			}
			n, err := strconv.Atoi(m[2])
			if err != nil || n < 1 || n > 1<<20 {
				return pf, fmt.Errorf("%q: bucket count must be 1..1048576", expr)
			}
			pf.Buckets = n
		} else if pf.Transform == "bucket" {
			return pf, fmt.Errorf("%q: want bucket(N, column)", expr)
		}
	} else {
		pf.Transform, pf.Column = "identity", strings.TrimSpace(expr)
	}
	return pf, nil
}

// checkPartitionType checks the transform applies to a column of type t.
func checkPartitionType(expr string, pf PartitionField, t schema.Type) error {
	switch pf.Transform {
	case "identity":
		if !t.IsPrimitive() || t.Kind == schema.KindFloat32 || t.Kind == schema.KindFloat64 || t.Kind == schema.KindDecimal {
			return fmt.Errorf("%q: cannot partition by identity of a %s column", expr, t)
		}
	case "hour":
		if !t.IsTimestamp() {
			return fmt.Errorf("%q: hour needs a timestamp column, %s is %s", expr, pf.Column, t)
		}
	case "day", "month", "year":
		if !t.IsTimestamp() && t.Kind != schema.KindDate {
			return fmt.Errorf("%q: %s needs a timestamp or date column, %s is %s", expr, pf.Transform, pf.Column, t)
		}
	case "bucket":
		switch t.Kind {
		case schema.KindInt32, schema.KindInt64, schema.KindString, schema.KindBinary,
			schema.KindDate, schema.KindTimestamp, schema.KindTimestampTZ, schema.KindDecimal:
		default:
			return fmt.Errorf("%q: cannot bucket a %s column", expr, t)
		}
	default:
		return fmt.Errorf("%q: unknown transform %q (want identity, hour, day, month, year or bucket)", expr, pf.Transform)
	}
	return nil
}
