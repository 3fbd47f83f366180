// Package integration holds end-to-end tests of the real sluice binary
// against real parts started by the tests themselves: an in-process
// Kafka-protocol broker (kfake), SQLite Iceberg catalogs in temporary
// directories, and independent readers of what landed.
package integration
