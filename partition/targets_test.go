package partition

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestKafkaTarget(t *testing.T) {
	const topic = "partition-notices"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	producer := newKafkaClient(t, kgo.SeedBrokers(c.ListenAddrs()...))

	target := NewKafkaTarget(producer, topic)
	if got, want := target.Name(), "kafka:"+topic; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	ready := goldenNotice()
	updated := goldenNotice()
	updated.Kind, updated.SnapshotID = Updated, ready.SnapshotID+1
	updated.ID = NoticeID(updated.Table, updated.Path, Updated, updated.SnapshotID)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, n := range []Notice{ready, updated} {
		if err := target.Deliver(ctx, n); err != nil {
			t.Fatalf("Deliver(%s): %v", n.ID, err)
		}
	}
	cancelled, cancelNow := context.WithCancel(ctx)
	cancelNow()
	if err := target.Deliver(cancelled, ready); err == nil || !strings.Contains(err.Error(), ready.ID) {
		t.Errorf("Deliver with a cancelled context: %v, want an error naming the notice", err)
	}

	consumer := newKafkaClient(t, kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var recs []*kgo.Record
	for len(recs) < 2 {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d records, want 2: %v", len(recs), err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		recs = append(recs, fs.Records()...)
	}
	for i, want := range []Notice{ready, updated} {
		r := recs[i]
		if string(r.Key) != want.ID {
			t.Errorf("record %d key = %q, want %q", i, r.Key, want.ID)
		}
		if got := mustJSON(t, json.RawMessage(r.Value)); got != mustJSON(t, want) {
			t.Errorf("record %d value:\ngot  %s\nwant %s", i, got, mustJSON(t, want))
		}
		if len(r.Headers) != 1 || r.Headers[0].Key != KindHeader || string(r.Headers[0].Value) != string(want.Kind) {
			t.Errorf("record %d headers = %v, want %s=%s", i, r.Headers, KindHeader, want.Kind)
		}
	}
}

func newKafkaClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// webhookServer answers with the status of statuses[i] for its i-th request
// (the last one for later requests) and records the requests.
type webhookServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []capturedRequest
}

type capturedRequest struct {
	method string
	header http.Header
	body   []byte
}

func newWebhookServer(t *testing.T, statuses ...int) *webhookServer {
	t.Helper()
	s := &webhookServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests = append(s.requests, capturedRequest{method: r.Method, header: r.Header.Clone(), body: body})
		status := statuses[min(len(s.requests), len(statuses))-1]
		s.mu.Unlock()
		w.WriteHeader(status)
		if status >= 300 {
			io.WriteString(w, "  refused: "+http.StatusText(status)+"\n")
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *webhookServer) captured() []capturedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func TestWebhookRequest(t *testing.T) {
	s := newWebhookServer(t, http.StatusOK)
	target := NewWebhook(s.URL+"/hooks/partitions?token=secret",
		map[string]string{"Authorization": "Bearer abc", "X-Team": "data", "Idempotency-Key": "overridden"}, time.Second)
	if got, want := target.Name(), "webhook:"+strings.TrimPrefix(s.URL, "http://"); got != want {
		t.Errorf("Name = %q, want %q (host only: no path or query)", got, want)
	}
	n := goldenNotice()
	if err := target.Deliver(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	reqs := s.captured()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost {
		t.Errorf("method = %s, want POST", r.method)
	}
	for key, want := range map[string]string{
		"Content-Type":    "application/json",
		"Idempotency-Key": n.ID,
		"Authorization":   "Bearer abc",
		"X-Team":          "data",
	} {
		if got := r.header.Get(key); got != want {
			t.Errorf("header %s = %q, want %q", key, got, want)
		}
	}
	var back Notice
	if err := json.Unmarshal(r.body, &back); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if got, want := mustJSON(t, back), mustJSON(t, n); got != want {
		t.Errorf("body:\ngot  %s\nwant %s", got, want)
	}
}

func TestWebhookStatus(t *testing.T) {
	tests := []struct {
		status  int
		wantErr string // "" = delivered
	}{
		{http.StatusOK, ""},
		{http.StatusCreated, ""},
		{http.StatusAccepted, ""},
		{http.StatusNoContent, ""},
		{http.StatusMovedPermanently, `status 301: "refused: Moved Permanently"`},
		{http.StatusBadRequest, `status 400: "refused: Bad Request"`},
		{http.StatusConflict, `status 409: "refused: Conflict"`},
		{http.StatusTooManyRequests, `status 429: "refused: Too Many Requests"`},
		{http.StatusInternalServerError, `status 500: "refused: Internal Server Error"`},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			s := newWebhookServer(t, tt.status)
			err := NewWebhook(s.URL, nil, time.Second).Deliver(context.Background(), goldenNotice())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Deliver: %v, want delivered", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Deliver error = %v, want one containing %s", err, tt.wantErr)
			}
		})
	}
}

func TestWebhookBodySnippetBounded(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, strings.Repeat("x", 100_000))
	}))
	t.Cleanup(s.Close)
	err := NewWebhook(s.URL, nil, time.Second).Deliver(context.Background(), goldenNotice())
	if err == nil || !strings.Contains(err.Error(), "status 502") {
		t.Fatalf("Deliver error = %v, want status 502", err)
	}
	if len(err.Error()) > 2*bodySnippet {
		t.Errorf("error is %d bytes long, want the body cut to %d", len(err.Error()), bodySnippet)
	}
}

func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(release) }) // runs before s.Close
	err := NewWebhook(s.URL, nil, 20*time.Millisecond).Deliver(context.Background(), goldenNotice())
	if err == nil {
		t.Fatal("Deliver to a server that never answers succeeded")
	}
}

func TestWebhookBadURL(t *testing.T) {
	for _, u := range []string{"://nope", "ftp://host/x", "/relative"} {
		target := NewWebhook(u, nil, 0)
		if err := target.Deliver(context.Background(), goldenNotice()); err == nil {
			t.Errorf("Deliver to %q succeeded", u)
		}
		if target.Name() != "webhook:invalid-url" {
			t.Errorf("Name for %q = %q", u, target.Name())
		}
	}
}

// A webhook failing its first requests gets the notice once it recovers,
// exactly once as far as successful requests go.
func TestWebhookRetriedByNotifier(t *testing.T) {
	s := newWebhookServer(t, 500, 429, 503, 500, 200)
	target := NewWebhook(s.URL, nil, time.Second)
	reg := prometheus.NewPedanticRegistry()
	n := newNotifier(t, Options{Targets: []Target{target}, Metrics: NewMetrics(reg)})
	var done atomic.Int32
	n.Enqueue([]Notice{goldenNotice()}, func() { done.Add(1) })
	start(t, n)
	waitFor(t, "delivery", func() bool { return done.Load() == 1 })

	reqs := s.captured()
	if len(reqs) != 5 {
		t.Errorf("%d requests, want 5 (4 refused, 1 accepted)", len(reqs))
	}
	for i, r := range reqs {
		if got := r.header.Get("Idempotency-Key"); got != goldenNotice().ID {
			t.Errorf("request %d Idempotency-Key = %q, want the same id on every attempt", i, got)
		}
	}
	name := target.Name()
	if got := counterValue(t, n.metrics.notices.WithLabelValues(name, "ready", "failed")); got != 4 {
		t.Errorf("failed attempts = %v, want 4", got)
	}
	if got := counterValue(t, n.metrics.notices.WithLabelValues(name, "ready", "delivered")); got != 1 {
		t.Errorf("delivered = %v, want 1", got)
	}
	if n.Pending() != 0 {
		t.Errorf("Pending = %d, want 0", n.Pending())
	}
}

func TestMarker(t *testing.T) {
	root := t.TempDir()
	target := NewMarker(func(n Notice) (string, bool) {
		if n.Table == "skip.me" {
			return "", false
		}
		return filepath.Join(root, n.Table, n.Path), true
	})
	if target.Name() != "marker" {
		t.Errorf("Name = %q, want marker", target.Name())
	}
	ctx := context.Background()
	ready := goldenNotice()
	dir := filepath.Join(root, ready.Table, ready.Path)
	marker := filepath.Join(dir, MarkerFile)

	deliver := func(n Notice) {
		t.Helper()
		if err := target.Deliver(ctx, n); err != nil {
			t.Fatalf("Deliver(%s): %v", n.ID, err)
		}
	}
	// content checks the marker holds n's JSON, a newline, nothing else,
	// and that no temporary file is left beside it.
	content := func(n Notice) os.FileInfo {
		t.Helper()
		got, err := os.ReadFile(marker)
		if err != nil {
			t.Fatal(err)
		}
		if want := mustJSON(t, n) + "\n"; string(got) != want {
			t.Errorf("marker content:\ngot  %q\nwant %q", got, want)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != MarkerFile {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("directory holds %v, want only %s", names, MarkerFile)
		}
		fi, err := os.Stat(marker)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("marker mode = %v, want 0644", fi.Mode().Perm())
		}
		return fi
	}

	deliver(ready) // creates the directory
	first := content(ready)

	// A re-sent ready notice keeps the marker: receivers saw that id.
	resent := ready
	resent.EmittedAt = ready.EmittedAt.Add(time.Minute)
	deliver(resent)
	if !os.SameFile(first, content(ready)) {
		t.Error("re-sent ready notice replaced the marker")
	}

	// Late data rewrites it, by rename: a new file, never an in-place edit.
	updated := ready
	updated.Kind, updated.SnapshotID, updated.Records = Updated, ready.SnapshotID+1, ready.Records+10
	updated.ID = NoticeID(updated.Table, updated.Path, Updated, updated.SnapshotID)
	deliver(updated)
	if os.SameFile(first, content(updated)) {
		t.Error("updated notice rewrote the marker in place, want a new file renamed over it")
	}

	// A ready notice re-sent after the update does not roll it back.
	deliver(ready)
	content(updated)

	// No directory: nothing to do.
	skipped := ready
	skipped.Table = "skip.me"
	deliver(skipped)
	if _, err := os.Stat(filepath.Join(root, "skip.me")); !os.IsNotExist(err) {
		t.Errorf("skipped notice left %v", err)
	}
}

func TestMarkerError(t *testing.T) {
	root := t.TempDir()
	blocker := filepath.Join(root, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	target := NewMarker(func(Notice) (string, bool) { return filepath.Join(blocker, "dir"), true })
	for _, kind := range []Kind{Ready, Updated} {
		n := goldenNotice()
		n.Kind = kind
		if err := target.Deliver(context.Background(), n); err == nil || !strings.Contains(err.Error(), n.ID) {
			t.Errorf("Deliver %s under a file: %v, want an error naming the notice", kind, err)
		}
	}
}
