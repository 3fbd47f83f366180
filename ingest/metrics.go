package ingest

import "github.com/prometheus/client_golang/prometheus"

// Metrics are shared by every stream of a pipeline, labelled by stream.
type Metrics struct {
	records     *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	lag         *prometheus.GaugeVec
	checkpoint  *prometheus.HistogramVec
	openFiles   *prometheus.GaugeVec
	bytes       *prometheus.CounterVec
	files       *prometheus.CounterVec
	paused      *prometheus.GaugeVec
	held        *prometheus.GaugeVec
	queued      *prometheus.GaugeVec
	unknown     *prometheus.CounterVec
}

// NewMetrics registers the stream metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_records_total",
			Help: "Records by stream and stage: read, parsed, filtered, dead_lettered, written, committed.",
		}, []string{"stream", "stage"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_dead_letters_total", Help: "Dead-lettered records by stream and failing stage (parse, etl, size).",
		}, []string{"stream", "stage"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_consumer_lag_records", Help: "Records between the position read and the partition end, summed over a stream's partitions.",
		}, []string{"stream"}),
		checkpoint: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_checkpoint_seal_duration_seconds", Help: "Time a worker took to seal its files at a checkpoint barrier.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"stream"}),
		openFiles: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_open_files", Help: "Data files open for writing.",
		}, []string{"stream"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_written_bytes_total", Help: "Bytes of sealed data files.",
		}, []string{"stream"}),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_written_files_total", Help: "Sealed data files.",
		}, []string{"stream"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_paused_partitions", Help: "Source partitions paused by backpressure.",
		}, []string{"stream"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_aligned_partitions", Help: "Source partitions paused because their event time ran more than watermark.max_drift ahead.",
		}, []string{"stream"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_queued_bytes", Help: "Bytes of fetched records waiting for a worker.",
		}, []string{"stream"}),
	}
	m.unknown = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_unknown_fields_total", Help: "Protobuf fields the stream's message type does not declare, skipped.",
	}, []string{"stream"})
	if reg != nil {
		reg.MustRegister(m.records, m.deadLetters, m.lag, m.checkpoint, m.openFiles, m.bytes, m.files, m.paused, m.held, m.queued, m.unknown)
	}
	return m
}
