package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/overlay/etcdsource"
	"github.com/nodewire/nodewire/overlay/etcdsource/etcdtest"
	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/sshsig"
)

const testSig = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"

func TestSplit(t *testing.T) {
	file, sig, err := split([]byte("overlay: {}\n"))
	if err != nil || string(file) != "overlay: {}\n" || sig != nil {
		t.Errorf("unsigned: %q %q %v", file, sig, err)
	}
	if _, _, err := split([]byte("x\n-----BEGIN SSH SIGNATURE-----\n!!\n-----END SSH SIGNATURE-----\n")); err == nil {
		t.Error("a broken signature block split")
	}
}

// The daemon starts from the cache when there is one, without asking etcd;
// else from etcd's value, and it waits for one.
func TestEtcdModePrepare(t *testing.T) {
	e := etcdtest.Start(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	url := "etcd://" + e.Addr + "/nw/peers"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// No key yet: prepare waits, and gives up with its context.
	state := t.TempDir()
	m, err := newEtcdMode(url, filepath.Join(state, "s"), etcdsource.TLSFiles{}, log)
	if err != nil {
		t.Fatal(err)
	}
	short, scancel := context.WithTimeout(ctx, time.Second)
	_, err = m.prepare(short)
	scancel()
	if err == nil || !strings.Contains(err.Error(), "no peer file from") {
		t.Fatalf("prepare with no key: %v", err)
	}

	// The key's value, split into the file the daemon loads and its .sig.
	bundle := sshsig.Bundle([]byte("serial: 1\n"), []byte(testSig))
	cli := e.Client()
	defer cli.Close()
	if _, err := cli.Put(ctx, "/nw/peers", string(bundle)); err != nil {
		t.Fatal(err)
	}
	got, err := m.prepare(ctx)
	if err != nil || !bytes.Equal(got, bundle) {
		t.Fatalf("prepare = %q, %v", got, err)
	}
	checkSplit(t, m, "serial: 1\n", testSig)

	// A damaged cache is passed over for etcd's value.
	if err := peers.WriteFileAtomic(m.cache, []byte("x\n-----BEGIN SSH SIGNATURE-----\n!!\n-----END SSH SIGNATURE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := m.prepare(ctx); err != nil || !bytes.Equal(got, bundle) {
		t.Fatalf("prepare with a damaged cache = %q, %v; want etcd's value", got, err)
	}

	// A cache wins over etcd (which may be down): it is what was applied.
	cached := sshsig.Bundle([]byte("serial: 7\n"), []byte(testSig))
	if err := peers.WriteFileAtomic(m.cache, cached, 0o600); err != nil {
		t.Fatal(err)
	}
	e.Stop()
	if got, err := m.prepare(ctx); err != nil || got != nil {
		t.Fatalf("prepare with a cache = %q, %v; want nil (nothing new to cache)", got, err)
	}
	checkSplit(t, m, "serial: 7\n", testSig)
	if fi, err := os.Stat(filepath.Join(state, "s")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v %v, want 0700", fi.Mode().Perm(), err)
	}
}

func checkSplit(t *testing.T, m *etcdMode, file, sig string) {
	t.Helper()
	if b, err := os.ReadFile(m.peerFile); err != nil || string(b) != file {
		t.Errorf("%s = %q, %v; want %q", m.peerFile, b, err, file)
	}
	if b, err := os.ReadFile(m.peerFile + sshsig.SigExt); err != nil || string(b) != sig {
		t.Errorf("%s.sig = %q, %v; want %q", m.peerFile, b, err, sig)
	}
}
