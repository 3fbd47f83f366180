package partition

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Target delivers one notice; an error means "not delivered, try again
// later". A target may receive a notice it already took (see the package
// doc), so delivering must be harmless to repeat.
type Target interface {
	// Name identifies the target in logs and the metric label, e.g.
	// "kafka:topic", "webhook:host", "marker".
	Name() string
	Deliver(ctx context.Context, n Notice) error
}

// KindHeader is the record header that carries the notice's kind, so
// consumers can filter without decoding the value.
const KindHeader = "sluice.kind"

type kafkaTarget struct {
	cl    *kgo.Client
	topic string
}

// NewKafkaTarget produces each notice to topic as a record keyed by the
// notice id (so re-sends of a notice land in one partition, after the
// first), with the notice's JSON as the value and its kind in the
// [KindHeader] header. cl must not be transactional; the target does not
// close it.
func NewKafkaTarget(cl *kgo.Client, topic string) Target {
	return &kafkaTarget{cl: cl, topic: topic}
}

func (k *kafkaTarget) Name() string { return "kafka:" + k.topic }

func (k *kafkaTarget) Deliver(ctx context.Context, n Notice) error {
	value, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode notice %s: %w", n.ID, err)
	}
	rec := &kgo.Record{
		Topic:   k.topic,
		Key:     []byte(n.ID),
		Value:   value,
		Headers: []kgo.RecordHeader{{Key: KindHeader, Value: []byte(n.Kind)}},
	}
	if err := k.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("produce notice %s to %s: %w", n.ID, k.topic, err)
	}
	return nil
}

// DefaultWebhookTimeout bounds one webhook request when NewWebhook is given
// no timeout.
const DefaultWebhookTimeout = 10 * time.Second

// bodySnippet is how much of a refusing webhook's body goes into the error.
const bodySnippet = 512

type webhook struct {
	url     string
	name    string
	urlErr  error // the URL does not parse: every delivery fails with it
	headers map[string]string
	client  *http.Client
}

// NewWebhook POSTs each notice's JSON to url with the configured headers
// and an "Idempotency-Key: <notice id>" header. Any 2xx response means
// delivered; any other status, 4xx included, is an error carrying the
// status and the start of the body, and is retried: a notice is never
// dropped because a receiver refused it. Redirects are not followed (a
// client following a 301 would turn the POST into a GET and could report a
// notice nobody received as delivered). timeout bounds each request,
// [DefaultWebhookTimeout] when not positive.
func NewWebhook(rawURL string, headers map[string]string, timeout time.Duration) Target {
	if timeout <= 0 {
		timeout = DefaultWebhookTimeout
	}
	w := &webhook{
		url:     rawURL,
		headers: headers,
		client: &http.Client{
			Timeout:       timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	// The name is only the host: the URL's path, query or user info may
	// hold secrets, and names go into logs and metric labels.
	u, err := url.Parse(rawURL)
	switch {
	case err != nil:
		w.urlErr, w.name = fmt.Errorf("webhook URL: %w", err), "webhook:invalid-url"
	case u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		w.urlErr, w.name = fmt.Errorf("webhook URL %q is not an http or https URL with a host", u.Redacted()), "webhook:invalid-url"
	default:
		w.name = "webhook:" + u.Host
	}
	return w
}

func (w *webhook) Name() string { return w.name }

func (w *webhook) Deliver(ctx context.Context, n Notice) error {
	if w.urlErr != nil {
		return w.urlErr
	}
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode notice %s: %w", n.ID, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	for k, v := range w.headers {
		req.Header.Set(k, v)
	}
	// Set last: configured headers must not break the protocol.
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", n.ID)
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("post notice %s: %w", n.ID, err) // *url.Error: its URL has the password redacted
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, bodySnippet))
	return fmt.Errorf("post notice %s to %s: status %d: %q", n.ID, w.name, resp.StatusCode,
		strings.ToValidUTF8(strings.TrimSpace(string(snippet)), "\uFFFD"))
}

// MarkerFile is the name of the file NewMarker writes.
const MarkerFile = "_SUCCESS"

type marker struct {
	dir   func(Notice) (string, bool)
	store MarkerStore
}

// MarkerStore is the file system markers are written to.
type MarkerStore interface {
	// Stat reports whether a file exists (an error wrapping
	// fs.ErrNotExist when it does not).
	Stat(path string) (fs.FileInfo, error)
	// WriteFile replaces path with data so that readers see the old file
	// or the new one, never a part; the file is durable once it returns.
	// It creates the directory.
	WriteFile(path string, data []byte) error
}

// NewMarker writes a _SUCCESS file into the local directory dir returns for
// a notice (creating the directory), with the notice's JSON and a newline
// as its content. The file appears atomically: it is written to a
// temporary file in the same directory, synced and renamed.
//
// Ready and empty notices create the marker and keep one that exists: it
// is this notice sent again, or an updated notice that followed it, which
// a re-sent ready notice must not roll back. Updated notices always
// rewrite it. When dir returns false the notice has no marker and
// delivery succeeds at once.
func NewMarker(dir func(Notice) (string, bool)) Target { return &marker{dir: dir, store: LocalStore{}} }

// NewMarkerIn is NewMarker on another file system (HDFS); dir returns
// paths of that file system.
func NewMarkerIn(store MarkerStore, dir func(Notice) (string, bool)) Target {
	return &marker{dir: dir, store: store}
}

func (m *marker) Name() string { return "marker" }

func (m *marker) Deliver(_ context.Context, n Notice) error {
	dir, ok := m.dir(n)
	if !ok {
		return nil
	}
	path := strings.TrimSuffix(dir, "/") + "/" + MarkerFile
	if n.Kind != Updated {
		if _, err := m.store.Stat(path); err == nil {
			return nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("marker for %s: %w", n.ID, err)
		}
	}
	content, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode notice %s: %w", n.ID, err)
	}
	if err := m.store.WriteFile(path, append(content, '\n')); err != nil {
		return fmt.Errorf("marker for %s: %w", n.ID, err)
	}
	return nil
}

// LocalStore is the local file system as a MarkerStore: files are written
// to a temporary name in their directory, synced, renamed and the
// directory synced.
type LocalStore struct{}

func (LocalStore) Stat(path string) (fs.FileInfo, error) { return os.Stat(filepath.FromSlash(path)) }

func (LocalStore) WriteFile(path string, data []byte) error {
	path = filepath.FromSlash(path)
	return writeAtomic(filepath.Dir(path), filepath.Base(path), data)
}

// writeAtomic replaces dir/name with data so that readers see the old file
// or the new one, never a part, and the new one survives a crash once this
// returns. The temporary file starts with a dot, which the Hadoop family of
// readers skips when listing a partition.
func writeAtomic(dir, name string, data []byte) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+name+"-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o644); err != nil { // CreateTemp makes it 0600; schedulers read it
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return d.Close()
}
