package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nodewire/nodewire/overlay"
	"github.com/nodewire/nodewire/overlay/etcdsource"
	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/sshsig"
)

// --peers etcd://HOST:PORT[,HOST:PORT]/KEY: the peer file is the value of
// an etcd key (a signed bundle, see overlayctl publish), watched by
// overlay/etcdsource and applied like a reload through ApplyPeerFile. The
// daemon itself runs on files in the state directory:
//
//	etcd-peers.bundle  the last value the daemon accepted (the cache)
//	peers.yaml(.sig)   that value split, which the daemon loads at start and on SIGHUP
//	trust-state        the running serial, unless --trust-state says otherwise
//
// A start finds the cache and runs on it whether etcd answers or not; only
// the very first start of a host waits for etcd.

// etcdMode is an overlayd whose peer file comes from etcd.
type etcdMode struct {
	target   etcdsource.Target
	tls      etcdsource.TLSFiles
	cache    string // the bundle
	peerFile string // the split file the daemon loads
	log      *slog.Logger
}

func newEtcdMode(url, stateDir string, tls etcdsource.TLSFiles, log *slog.Logger) (*etcdMode, error) {
	t, err := etcdsource.ParseTarget(url)
	if err != nil {
		return nil, fmt.Errorf("--peers: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("--state-dir: %w", err)
	}
	return &etcdMode{target: t, tls: tls, log: log,
		cache:    filepath.Join(stateDir, "etcd-peers.bundle"),
		peerFile: filepath.Join(stateDir, "peers.yaml")}, nil
}

// prepare puts the peer file the daemon starts from in place: the cache
// if there is one, else the key's value, waiting for etcd as long as ctx
// lasts. It reports whether the value came from etcd (to be cached once
// the daemon accepted it).
func (m *etcdMode) prepare(ctx context.Context) (fromEtcd []byte, err error) {
	b, err := os.ReadFile(m.cache)
	if err == nil {
		if err = m.writeSplit(b); err == nil {
			m.log.Info("starting from the cached peer file; etcd is watched in the background", slog.String("cache", m.cache), slog.String("source", m.target.String()))
			return nil, nil
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		m.log.Info("no cached peer file: waiting for etcd", slog.String("source", m.target.String()))
	} else {
		m.log.Error("the cached peer file is unusable: waiting for etcd", slog.String("cache", m.cache), slog.Any("err", err))
	}
	backoff := 250 * time.Millisecond
	for {
		b, err := m.get(ctx)
		if err == nil {
			return b, m.writeSplit(b)
		}
		m.log.Warn("etcd: no peer file yet", slog.Any("err", err))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no peer file from %s: %w", m.target, ctx.Err())
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// fetch is one read of the key (bounded by 10 s), split into the daemon's
// peer file.
func (m *etcdMode) fetch(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := m.get(ctx)
	if err != nil {
		return nil, err
	}
	return b, m.writeSplit(b)
}

func (m *etcdMode) get(ctx context.Context) ([]byte, error) {
	cli, err := etcdsource.Dial(m.target, m.tls)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, m.target.Key)
	if err != nil {
		return nil, err
	}
	if len(r.Kvs) == 0 {
		return nil, fmt.Errorf("%s: no such key (publish one with overlayctl publish)", m.target)
	}
	return r.Kvs[0].Value, nil
}

// split is a bundle's file and signature; a value with no signature block
// is an unsigned file (which --trust refuses).
func split(b []byte) (file, sig []byte, err error) {
	if !sshsig.IsBundle(b) {
		return b, nil, nil
	}
	return sshsig.SplitBundle(b)
}

// writeSplit writes a bundle as the daemon's peer file and its .sig.
func (m *etcdMode) writeSplit(b []byte) error {
	file, sig, err := split(b)
	if err != nil {
		return err
	}
	if sig == nil {
		os.Remove(m.peerFile + sshsig.SigExt)
	} else if err := peers.WriteFileAtomic(m.peerFile+sshsig.SigExt, sig, 0o600); err != nil {
		return err
	}
	return peers.WriteFileAtomic(m.peerFile, file, 0o600)
}

// run watches the key until ctx ends, applying each new value to d.
// first, if not nil, is the value the daemon started from, now accepted.
func (m *etcdMode) run(ctx context.Context, wg *sync.WaitGroup, d *overlay.Daemon, first []byte) {
	if first != nil {
		if err := peers.WriteFileAtomic(m.cache, first, 0o600); err != nil {
			m.log.Error("etcd cache not written", slog.Any("err", err))
		}
	}
	src := etcdsource.New(etcdsource.Config{
		Target: m.target, TLS: m.tls, Cache: m.cache, Logger: m.log,
		Apply: func(ctx context.Context, rev int64, value []byte) error {
			file, sig, err := split(value)
			if err != nil {
				m.log.Error("peer file from etcd refused; still running on the last good one", slog.String("file", fmt.Sprintf("%s@%d", m.target, rev)), slog.Any("err", err))
				return err
			}
			if err := d.ApplyPeerFile(ctx, fmt.Sprintf("%s@%d", m.target, rev), file, sig); err != nil {
				return err
			}
			// The bundle first: a start splits it again, so a crash
			// between the writes leaves nothing older in charge.
			if err := peers.WriteFileAtomic(m.cache, value, 0o600); err != nil {
				m.log.Error("etcd cache not written", slog.Any("err", err))
			} else if err := m.writeSplit(value); err != nil {
				m.log.Error("peer file in the state directory not written", slog.Any("err", err))
			}
			return nil
		},
	})
	d.SetSource(src.Status)
	wg.Add(1)
	go func() { defer wg.Done(); src.Run(ctx) }()
}
