package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path"

	iceberggo "github.com/apache/iceberg-go"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/partition"
	"github.com/sluicehq/sluice/sinks/hdfs"
	"github.com/sluicehq/sluice/sinks/hive"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

// hdfsOptions turns the hdfs section into client options.
func hdfsOptions(c config.HDFS, log *slog.Logger, m *hdfs.Metrics) hdfs.Options {
	o := hdfs.Options{
		NameNodes: c.NameNodes, HadoopConfDir: c.HadoopConfDir, User: c.User,
		DataTransferProtection: c.DataTransferProtection, UseDatanodeHostname: c.UseDatanodeHostname,
		Connections: c.Connections, Replication: c.Replication, BlockSize: int64(c.BlockSize),
		CloseTimeout: c.CloseTimeout.D(), Logger: log, Metrics: m,
	}
	if k := c.Kerberos; k != nil {
		o.Kerberos = &hdfs.Kerberos{Principal: k.Principal, Keytab: k.Keytab, CCache: k.CCache,
			Krb5Conf: k.Krb5Conf, ServicePrincipal: k.ServicePrincipal}
	}
	return o
}

// installHDFS makes the hdfs section serve every hdfs:// location of this
// process (Iceberg tables and directory tables); clusters are connected on
// first use. It returns the clients and their closer.
func installHDFS(c config.HDFS, log *slog.Logger, reg prometheus.Registerer) (*hdfs.Clients, func() error) {
	cl := hdfs.NewClients(hdfsOptions(c, log, hdfs.NewMetrics(reg)))
	hdfs.Install(cl)
	return cl, cl.Close
}

// hiveTable opens (and recovers) a stream's hive directory table, with
// the file IO its writers use and its notice wiring.
func (p *pipeline) hiveTable(ctx context.Context, sc config.Stream, spec iceberggo.PartitionSpec) (*hive.Table, icebergio.WriteFileIO, noticeTable, error) {
	u, err := url.Parse(sc.Table.Location)
	if err != nil {
		return nil, nil, noticeTable{}, fmt.Errorf("table.location: %w", err)
	}
	var (
		fsys hive.FS
		fio  icebergio.WriteFileIO
	)
	switch u.Scheme {
	case "hdfs":
		h, err := p.hdfs.FS(u.Host)
		if err != nil {
			return nil, nil, noticeTable{}, fmt.Errorf("table.location: %w", err)
		}
		fsys, fio = h, hdfs.NewIO(h, u.Host)
	default:
		fsys, fio = hive.LocalFS{}, icebergio.LocalFS{}
	}
	tbl, err := hive.Open(ctx, hive.Options{Name: sc.Table.Name, Location: sc.Table.Location, FS: fsys, Logger: p.log})
	if err != nil {
		return nil, nil, noticeTable{}, err
	}
	_, unit, _ := sc.TimePartition()
	nt := noticeTable{spec: spec, marker: func(idx int) (partition.Target, error) {
		if idx != 0 {
			return nil, fmt.Errorf("success_file needs the time partition first in table.partition, so each slice has one directory")
		}
		return partition.NewMarkerIn(fsys, func(n partition.Notice) (string, bool) {
			return path.Join(tbl.Root(), iceberg.HiveTimeDir(unit, n.Start)), true
		}), nil
	}}
	return tbl, fio, nt, nil
}
