package etcdsource

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nodewire/nodewire/overlay/etcdsource/etcdtest"
	"github.com/nodewire/nodewire/peers"
)

// applier records what a Source applied and refuses values starting "bad".
type applier struct {
	mu  sync.Mutex
	got []string
}

func (a *applier) apply(_ context.Context, _ int64, v []byte) error {
	if bytes.HasPrefix(v, []byte("bad")) {
		return errors.New("bad value")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, string(v))
	return nil
}

func (a *applier) applied() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func put(t *testing.T, e *etcdServer, key, val string) int64 {
	t.Helper()
	cli := e.client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.Put(ctx, key, val)
	if err != nil {
		t.Fatal(err)
	}
	return r.Header.Revision
}

// runSource runs s until the test ends.
func runSource(t *testing.T, s *Source) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestSourceAppliesRefusesCachesAndReconnects(t *testing.T) {
	e := startEtcd(t)
	cache := filepath.Join(t.TempDir(), "peers.cache")
	rev1 := put(t, e, "/nw/peers", "v1")
	var a applier
	s := New(Config{Target: e.target("/nw/peers"), Cache: cache, Apply: a.apply, Probe: 200 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	runSource(t, s)

	// The value present at start is applied and cached.
	waitFor(t, "v1 applied", func() bool { return s.Status().Revision == rev1 })
	if st := s.Status(); !st.Connected || st.LastError != "" {
		t.Fatalf("status after v1 = %+v", st)
	}
	if b, err := os.ReadFile(cache); err != nil || string(b) != "v1" {
		t.Fatalf("cache = %q, %v", b, err)
	}
	if fi, _ := os.Stat(cache); fi.Mode().Perm() != 0o600 {
		t.Errorf("cache mode %v, want 0600", fi.Mode().Perm())
	}

	// A watched put is applied; a refused one keeps the last good in the
	// cache and is reported.
	rev2 := put(t, e, "/nw/peers", "v2")
	waitFor(t, "v2 applied", func() bool { return s.Status().Revision == rev2 })
	rev3 := put(t, e, "/nw/peers", "bad v3")
	waitFor(t, "v3 refused", func() bool { return s.Status().Seen == rev3 })
	st := s.Status()
	if st.Revision != rev2 || st.Refused != 1 || st.LastError == "" {
		t.Fatalf("status after a refusal = %+v", st)
	}
	if b, _ := os.ReadFile(cache); string(b) != "v2" {
		t.Fatalf("cache after a refusal = %q, want v2", b)
	}

	// etcd down: the source says so and keeps its revision; back: it
	// reconnects and applies the next put.
	e.stop()
	waitFor(t, "disconnected", func() bool { return !s.Status().Connected })
	if st := s.Status(); st.Revision != rev2 || st.LastError == "" {
		t.Fatalf("status with etcd down = %+v", st)
	}
	e.start()
	waitFor(t, "reconnected", func() bool { return s.Status().Connected })
	rev4 := put(t, e, "/nw/peers", "v4")
	waitFor(t, "v4 applied", func() bool { return s.Status().Revision == rev4 })
	if got, want := a.applied(), []string{"v1", "v2", "v4"}; !equal(got, want) {
		t.Fatalf("applied %q, want %q", got, want)
	}
}

// A new source with a cache equal to etcd's value does not apply it again;
// one whose cache differs does.
func TestSourceStartsFromCache(t *testing.T) {
	e := startEtcd(t)
	cache := filepath.Join(t.TempDir(), "peers.cache")
	if err := peers.WriteFileAtomic(cache, []byte("v1"), 0o600); err != nil {
		t.Fatal(err)
	}
	rev := put(t, e, "/k", "v1")
	var a applier
	s := New(Config{Target: e.target("/k"), Cache: cache, Apply: a.apply})
	if !s.Status().Cached {
		t.Fatal("cache not read")
	}
	runSource(t, s)
	waitFor(t, "revision known", func() bool { return s.Status().Revision == rev })
	if got := a.applied(); len(got) != 0 {
		t.Fatalf("applied %q: the cached value again", got)
	}
	rev2 := put(t, e, "/k", "v2")
	waitFor(t, "v2", func() bool { return s.Status().Revision == rev2 })
}

// With etcd unreachable, Run keeps retrying and Status answers at once.
func TestSourceUnreachable(t *testing.T) {
	tg := Target{Endpoints: []string{"127.0.0.1:1"}, Key: "/k"}
	s := New(Config{Target: tg, Cache: filepath.Join(t.TempDir(), "c"), Apply: (&applier{}).apply, MaxBackoff: 100 * time.Millisecond})
	runSource(t, s)
	waitFor(t, "two failed attempts", func() bool { return s.Status().Errors >= 2 })
	if st := s.Status(); st.Connected || st.LastError == "" {
		t.Fatalf("status = %+v", st)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// etcds:// with a client certificate: a source follows the key; without
// the certificate etcd refuses the client.
func TestSourceTLSClientCertificate(t *testing.T) {
	e := etcdtest.StartTLS(t)
	cli := e.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Put(ctx, "/k", "v1")
	cli.Close()
	if err != nil {
		t.Fatal(err)
	}
	tg := Target{Endpoints: []string{e.Addr}, Key: "/k", TLS: true}

	var a applier
	s := New(Config{Target: tg, TLS: TLSFiles{CA: e.CA, Cert: e.ClientCert, Key: e.ClientKey}, Cache: filepath.Join(t.TempDir(), "c"), Apply: a.apply})
	runSource(t, s)
	waitFor(t, "v1 over TLS", func() bool { return s.Status().Revision == r.Header.Revision })

	noCert, err := Dial(tg, TLSFiles{CA: e.CA})
	if err != nil {
		t.Fatal(err)
	}
	defer noCert.Close()
	gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
	defer gcancel()
	if _, err := noCert.Get(gctx, "/k"); err == nil {
		t.Fatal("etcd answered a client without a certificate")
	}
	if _, err := Dial(Target{Endpoints: []string{e.Addr}, Key: "/k"}, TLSFiles{CA: e.CA}); err == nil {
		t.Error("TLS files with a plain etcd:// URL accepted")
	}
}
