package etcdsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nodewire/nodewire/overlay/control"
	"github.com/nodewire/nodewire/peers"
)

// Config is what a Source needs.
type Config struct {
	Target Target
	TLS    TLSFiles
	// Cache is the file holding the last value Apply accepted (0600,
	// replaced atomically). A restart with etcd down starts from it.
	Cache string
	// Apply applies one value (a peer file bundle) read at revision rev.
	// An error refuses it: the cache keeps the previous value and the
	// same revision is not offered again.
	Apply  func(ctx context.Context, rev int64, value []byte) error
	Logger *slog.Logger
	// Probe is how often a live watch checks that etcd still answers
	// (0: 2 s); a failed check reconnects.
	Probe time.Duration
	// MaxBackoff bounds the wait between reconnects (0: 5 s).
	MaxBackoff time.Duration
}

// Status is the source's state, for status and metrics.
type Status = control.SourceStatus

// Source watches one key. Run drives it; Status may be called at any time.
type Source struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	st   Status
	last []byte // the last value applied (or read from the cache)
}

// New makes a source; it reads the cache (if any) so that a value equal to
// it is not applied twice.
func New(cfg Config) *Source {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Probe == 0 {
		cfg.Probe = 2 * time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	s := &Source{cfg: cfg, log: cfg.Logger.With(slog.String("source", cfg.Target.String()))}
	s.st.URL = cfg.Target.String()
	if b, err := os.ReadFile(cfg.Cache); err == nil {
		s.last, s.st.Cached = b, true
	}
	return s
}

// ReadCache returns the cached value, or an error naming the file.
func ReadCache(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("etcd cache: %w", err)
	}
	return b, nil
}

// Status reports the source's state without touching etcd.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// Run watches until ctx ends, reconnecting with backoff after any error.
func (s *Source) Run(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := s.session(ctx)
		if ctx.Err() != nil {
			break
		}
		s.mu.Lock()
		wasUp := s.st.Connected
		s.st.Connected = false
		s.st.Errors++
		s.st.LastError = err.Error()
		first := s.st.Errors == 1
		s.mu.Unlock()
		if wasUp {
			s.log.Warn("etcd lost; running on the last good peer file, retrying", slog.Any("err", err))
		} else if first {
			s.log.Warn("etcd unreachable; running on the last good peer file, retrying", slog.Any("err", err))
		} else {
			s.log.Debug("etcd unreachable; retrying", slog.Any("err", err))
		}
		if time.Since(start) > 10*time.Second {
			backoff = 250 * time.Millisecond
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
	s.mu.Lock()
	s.st.Connected = false
	s.mu.Unlock()
}

// session is one connection: read the key, apply it, then watch from the
// next revision, checking every Probe that etcd still answers.
func (s *Source) session(ctx context.Context) error {
	cli, err := Dial(s.cfg.Target, s.cfg.TLS)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	gctx, gcancel := context.WithTimeout(ctx, min(3*time.Second, 3*s.cfg.Probe/2))
	resp, err := cli.Get(gctx, s.cfg.Target.Key)
	gcancel()
	if err != nil {
		return fmt.Errorf("get %s: %w", s.cfg.Target.Key, err)
	}
	s.mu.Lock()
	wasDown := !s.st.Connected
	s.st.Connected = true
	s.mu.Unlock()
	if wasDown {
		s.log.Info("etcd connected", slog.Int64("revision", resp.Header.Revision))
	}
	if len(resp.Kvs) == 1 {
		kv := resp.Kvs[0]
		s.offer(ctx, kv.ModRevision, kv.Value)
	}

	probeErr := make(chan error, 1)
	var probing sync.WaitGroup
	defer probing.Wait() // after cancel (deferred later, so run first)
	defer cancel()
	probing.Add(1)
	go func() {
		defer probing.Done()
		t := time.NewTicker(s.cfg.Probe)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pctx, pcancel := context.WithTimeout(ctx, s.cfg.Probe)
			_, err := cli.Get(pctx, s.cfg.Target.Key, clientv3.WithCountOnly())
			pcancel()
			if err != nil && ctx.Err() == nil {
				probeErr <- fmt.Errorf("probe: %w", err)
				return
			}
		}
	}()

	wch := cli.Watch(clientv3.WithRequireLeader(ctx), s.cfg.Target.Key, clientv3.WithRev(resp.Header.Revision+1))
	for {
		select {
		case err := <-probeErr:
			return err
		case wr, ok := <-wch:
			if !ok {
				return errors.New("watch closed")
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("watch %s: %w", s.cfg.Target.Key, err)
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut {
					s.offer(ctx, ev.Kv.ModRevision, ev.Kv.Value)
				}
			}
		}
	}
}

// offer hands a value to Apply unless it was offered already (same
// revision) or is the value running now (same bytes, e.g. the cache).
func (s *Source) offer(ctx context.Context, rev int64, value []byte) {
	s.mu.Lock()
	if rev <= s.st.Seen {
		s.mu.Unlock()
		return
	}
	s.st.Seen = rev
	same := bytes.Equal(value, s.last)
	if same {
		s.st.Revision = rev
	}
	s.mu.Unlock()
	if same {
		return
	}
	if err := s.cfg.Apply(ctx, rev, value); err != nil {
		s.mu.Lock()
		s.st.Refused++
		s.st.LastError = fmt.Sprintf("revision %d refused: %v", rev, err)
		s.mu.Unlock()
		// Apply logs its verdict (the daemon logs every refusal once).
		s.log.Debug("peer file from etcd refused; keeping the last good one", slog.Int64("revision", rev), slog.Any("err", err))
		return
	}
	if err := peers.WriteFileAtomic(s.cfg.Cache, value, 0o600); err != nil {
		s.log.Error("etcd cache not written: a restart with etcd down would start from an older file", slog.Any("err", err))
	}
	s.mu.Lock()
	s.last = value
	s.st.Revision, s.st.AppliedAt, s.st.LastError = rev, time.Now(), ""
	s.mu.Unlock()
	s.log.Info("peer file from etcd applied", slog.Int64("revision", rev), slog.Int("bytes", len(value)))
}
