package hdfs

import (
	"context"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
)

// Metrics count what Sluice asks of HDFS. A nil *Metrics counts nothing.
type Metrics struct {
	calls        *prometheus.CounterVec
	closeSeconds prometheus.Histogram
	closeRetries prometheus.Counter
}

// NewMetrics registers the HDFS metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_hdfs_namenode_calls_total",
			Help: "Calls sent to the NameNode, by RPC method (create, addBlock, complete, rename2, mkdirs, getFileInfo, getListing, ...).",
		}, []string{"method"}),
		closeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_hdfs_close_seconds",
			Help:    "Time to close one HDFS file: last packets acknowledged and the file completed on the NameNode.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		closeRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_hdfs_close_retries_total",
			Help: "Closes retried: the NameNode answered that the last block is not replicated yet, or the connection was lost.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.closeSeconds, m.closeRetries)
	}
	return m
}

func (m *Metrics) observeClose(d time.Duration) {
	if m != nil {
		m.closeSeconds.Observe(d.Seconds())
	}
}

func (m *Metrics) retriedClose() {
	if m != nil {
		m.closeRetries.Inc()
	}
}

// Calls is the number of NameNode calls of method so far.
func (m *Metrics) Calls(method string) float64 {
	if m == nil {
		return 0
	}
	var pb dto.Metric
	if err := m.calls.WithLabelValues(method).Write(&pb); err != nil {
		return 0
	}
	return pb.GetCounter().GetValue()
}

type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// dial wraps the NameNode dialer so that every call is counted by method.
// The client library offers no hook for this, but it writes each call as
// one frame in one Write, so the method name is read off the frame's
// request header (Hadoop IPC: length, RpcRequestHeaderProto,
// RequestHeaderProto whose field 1 is the method).
func (m *Metrics) dial(next dialFunc) dialFunc {
	if next == nil {
		next = (&net.Dialer{Timeout: 30 * time.Second}).DialContext
	}
	if m == nil {
		return next
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, m: m}, nil
	}
}

type countingConn struct {
	net.Conn
	m *Metrics
}

func (c *countingConn) Write(p []byte) (int, error) {
	if method := callMethod(p); method != "" {
		c.m.calls.WithLabelValues(method).Inc()
	}
	return c.Conn.Write(p)
}

// callMethod reads the method of one IPC request frame; "" for the
// connection preamble, connection context, pings and SASL exchanges
// (negative call ids) and anything it cannot read.
func callMethod(p []byte) string {
	if len(p) < 5 || string(p[:4]) == "hrpc" {
		return ""
	}
	p = p[4:]
	hdr, n := protowire.ConsumeBytes(p)
	if n < 0 {
		return ""
	}
	callID := int64(-1)
	for len(hdr) > 0 {
		num, typ, k := protowire.ConsumeTag(hdr)
		if k < 0 {
			return ""
		}
		hdr = hdr[k:]
		if num == 3 && typ == protowire.VarintType { // sint32 callId
			v, k := protowire.ConsumeVarint(hdr)
			if k < 0 {
				return ""
			}
			callID = protowire.DecodeZigZag(v)
		}
		k = protowire.ConsumeFieldValue(num, typ, hdr)
		if k < 0 {
			return ""
		}
		hdr = hdr[k:]
	}
	if callID < 0 {
		return ""
	}
	req, k := protowire.ConsumeBytes(p[n:])
	if k < 0 {
		return ""
	}
	for len(req) > 0 {
		num, typ, k := protowire.ConsumeTag(req)
		if k < 0 {
			return ""
		}
		req = req[k:]
		if num == 1 && typ == protowire.BytesType {
			name, k := protowire.ConsumeBytes(req)
			if k < 0 {
				return ""
			}
			return string(name)
		}
		k = protowire.ConsumeFieldValue(num, typ, req)
		if k < 0 {
			return ""
		}
		req = req[k:]
	}
	return ""
}
