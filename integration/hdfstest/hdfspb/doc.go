// Package hdfspb holds the HDFS test double's protocol messages, generated
// from hdfs.proto.
package hdfspb

//go:generate go run ./gen
