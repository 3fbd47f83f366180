// Package partition announces complete table partitions to schedulers: the
// notices, their targets and their delivery.
//
// The committer decides when a partition is ready and builds a [Notice]; a
// [Notifier] hands it to every [Target] (a Kafka topic, a webhook, a
// _SUCCESS marker file) and retries each target until it takes the notice.
// Delivery is at least once: a notice may reach a target more than once
// (after a retry whose first attempt did arrive, or when the caller re-sends
// undelivered notices after a restart), so receivers dedupe by [Notice.ID],
// which stays the same across re-sends.
package partition
