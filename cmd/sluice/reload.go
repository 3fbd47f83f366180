package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// watchFile sends the config file's content on out when it changes (checked
// every interval; editors and config maps that replace the file are seen
// too) and whenever SIGHUP arrives. Parsing and validation happen where the
// config is applied, so a bad edit is refused there and counted.
func watchFile(ctx context.Context, path string, interval time.Duration, log *slog.Logger, out chan<- []byte) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	last, _ := os.ReadFile(path)
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-hup:
			force = true
			log.Info("SIGHUP: reloading the config", "path", path)
		case <-tick:
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			log.Error("config reload: cannot read the file; the running config stays", "path", path, "err", err)
			continue
		}
		if !force && bytes.Equal(raw, last) {
			continue
		}
		last = raw
		select {
		case out <- raw:
		case <-ctx.Done():
			return
		}
	}
}

// configTopic distributes pipeline configs to a fleet of daemons over a
// compacted Kafka topic: the record whose key is the pipeline name holds
// the config (the whole YAML file). Every daemon of the pipeline applies the
// newest one.
type configTopic struct {
	opts  []kgo.Opt
	topic string
	key   string
}

// latest reads the topic to its current end and returns the newest config
// for the key, or nil when there is none.
func (c configTopic) latest(ctx context.Context) ([]byte, kgo.Offset, error) {
	cl, err := kgo.NewClient(c.opts...)
	if err != nil {
		return nil, kgo.Offset{}, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, c.topic)
	if err != nil {
		return nil, kgo.Offset{}, fmt.Errorf("config topic %s: %w", c.topic, err)
	}
	if err := ends.Error(); err != nil {
		return nil, kgo.Offset{}, fmt.Errorf("config topic %s: %w", c.topic, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil, kgo.NewOffset().AtStart(), nil
	}
	rd, err := kgo.NewClient(append(c.opts, kgo.ConsumeTopics(c.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return nil, kgo.Offset{}, err
	}
	defer rd.Close()
	var newest []byte
	var newestAt time.Time
	for len(want) > 0 {
		fs := rd.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return nil, kgo.Offset{}, fmt.Errorf("config topic %s: %w", c.topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) == c.key && !r.Timestamp.Before(newestAt) {
				newest, newestAt = r.Value, r.Timestamp
			}
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return newest, kgo.NewOffset().AtEnd(), nil
}

// watch sends every new config for the key published after start.
func (c configTopic) watch(ctx context.Context, log *slog.Logger, out chan<- []byte) error {
	cl, err := kgo.NewClient(append(c.opts, kgo.ConsumeTopics(c.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			log.Warn("config topic fetch error", "topic", t, "partition", p, "err", err)
		})
		var err error
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) != c.key || r.Value == nil || err != nil {
				return
			}
			log.Info("new config published", "topic", c.topic, "partition", r.Partition, "offset", r.Offset)
			select {
			case out <- r.Value:
			case <-ctx.Done():
				err = ctx.Err()
			}
		})
		if err != nil {
			return nil
		}
	}
}
