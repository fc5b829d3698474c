package overlay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/sshsig"
)

// logBuffer collects a daemon's log lines for the test to read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// take returns the lines written since the last take.
func (l *logBuffer) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

func newAdmin(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sign(t *testing.T, s ssh.Signer, ns string, data []byte) []byte {
	t.Helper()
	sig, err := sshsig.Sign(data, s, ns)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestDaemonSignedPeerFiles runs a daemon with --trust through a reload of
// each kind of bad file: every one is refused with its reason, logged,
// counted, and the last good file keeps running; a good file then applies,
// from disk and through ApplyPeerFile; and a restart still refuses a
// rollback.
func TestDaemonSignedPeerFiles(t *testing.T) {
	a, b, c := newTestHost(t), newTestHost(t), newTestHost(t)
	admin, stranger := newAdmin(t), newAdmin(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir, a, b, "nwtest-trust")
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	cfg.Trust = filepath.Join(dir, "admins.pub")
	cfg.TrustState = filepath.Join(dir, "applied")
	if err := os.WriteFile(cfg.Trust, append([]byte("# admins\nadmin@nodewire "), ssh.MarshalAuthorizedKey(admin.PublicKey())...), 0o644); err != nil {
		t.Fatal(err)
	}
	two := mustRead(t, cfg.PeerFile)                                                        // a and b
	three := mustRead(t, peerFile(t, dir, map[string]testHost{"a": a, "b": b, "c": c}, "")) // a, b and c
	version := func(base string, serial int, extra string) []byte {
		return []byte(fmt.Sprintf("serial: %d\n%s%s", serial, base, extra))
	}
	// write puts a peer file and its signature on disk; a nil sig removes
	// the signature file.
	write := func(file, sig []byte) {
		t.Helper()
		if err := os.WriteFile(cfg.PeerFile, file, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(cfg.PeerFile + ".sig")
		if sig != nil {
			if err := os.WriteFile(cfg.PeerFile+".sig", sig, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	peerNames := func(d *Daemon) string {
		d.mu.Lock()
		defer d.mu.Unlock()
		var names []string
		for _, p := range d.file.Peers {
			names = append(names, p.Name)
		}
		return fmt.Sprintf("serial %d %v", d.file.Serial, names)
	}
	metrics := func(d *Daemon) string {
		var m strings.Builder
		if err := d.WriteMetrics(&m); err != nil {
			t.Fatal(err)
		}
		return m.String()
	}
	ctx := context.Background()

	// Unsigned at start: refused, nothing runs.
	write(version(two, 5, ""), nil)
	if d, err := New(ctx, cfg); err == nil {
		d.Close()
		t.Fatal("started on an unsigned file")
	} else if !strings.Contains(err.Error(), "refused (unsigned)") {
		t.Fatalf("start on an unsigned file: %v", err)
	}
	logs.take()

	good := version(two, 5, "")
	write(good, sign(t, admin, sshsig.Namespace, good))
	d, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if d != nil {
			d.Close()
		}
	}()
	if got := peerNames(d); got != "serial 5 [a b]" {
		t.Fatalf("at start: %s", got)
	}
	if s := mustRead(t, cfg.TrustState); !strings.HasPrefix(s, "serial 5 sha256 ") {
		t.Errorf("state after start: %q", s)
	}
	logs.take()

	newer := version(three, 6, "")
	for _, tc := range []struct {
		name   string
		file   []byte
		sig    []byte
		reason peers.RefusalReason
	}{
		{"unsigned", newer, nil, peers.ReasonUnsigned},
		{"tampered", bytes.Replace(newer, []byte("10.91.1.3"), []byte("10.91.1.9"), 1), sign(t, admin, sshsig.Namespace, newer), peers.ReasonBadSignature},
		{"unknown key", newer, sign(t, stranger, sshsig.Namespace, newer), peers.ReasonUntrustedKey},
		{"other namespace", newer, sign(t, admin, "file", newer), peers.ReasonWrongNS},
		{"invalid", version(three, 6, "bogus: 1\n"), nil, peers.ReasonInvalid},
		{"rollback", version(three, 4, ""), nil, peers.ReasonRollback},
		{"serial reused", version(three, 5, ""), nil, peers.ReasonSerialReused},
		{"expired", version(three, 6, "expires: 2026-01-01T00:00:00Z\n"), nil, peers.ReasonExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := tc.sig
			if sig == nil && tc.reason != peers.ReasonUnsigned {
				sig = sign(t, admin, sshsig.Namespace, tc.file)
			}
			write(tc.file, sig)
			err := d.Reload(ctx)
			var r *peers.RefusedError
			if !errors.As(err, &r) || r.Reason != tc.reason || r.Running != 5 {
				t.Fatalf("reload: %v; want a refusal (%s) with running serial 5", err, tc.reason)
			}
			if got := peerNames(d); got != "serial 5 [a b]" {
				t.Errorf("after the refusal, running %s; want the last good file, serial 5 [a b]", got)
			}
			line := strings.TrimSpace(logs.take())
			t.Logf("log: %s", line)
			if strings.Count(line, "\n") != 0 || !strings.Contains(line, `msg="peer file refused; still running on the last good one"`) ||
				!strings.Contains(line, "file="+cfg.PeerFile) || !strings.Contains(line, "reason="+string(tc.reason)) ||
				!strings.Contains(line, fmt.Sprintf("serial=%d running_serial=5", r.Serial)) {
				t.Errorf("refusal logged as %q; want one line naming the file, the reason and both serials", line)
			}
			if m := metrics(d); !strings.Contains(m, fmt.Sprintf("nodewire_peerfile_refused_total{reason=%q} 1\n", tc.reason)) {
				t.Errorf("refusal not counted:\n%s", m)
			}
		})
	}
	m := metrics(d)
	for _, r := range peers.RefusalReasons {
		if !strings.Contains(m, fmt.Sprintf("nodewire_peerfile_refused_total{reason=%q} 1\n", r)) {
			t.Errorf("metrics: reason %s not counted once:\n%s", r, m)
		}
	}
	if !strings.Contains(m, "nodewire_peerfile_serial 5\n") {
		t.Errorf("metrics: running serial not 5:\n%s", m)
	}

	// A good newer file applies, on disk...
	write(newer, sign(t, admin, sshsig.Namespace, newer))
	if err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := peerNames(d); got != "serial 6 [a b c]" {
		t.Fatalf("after a good reload: %s", got)
	}
	// ...and from another source, as one bundle split in two.
	seven := version(three, 7, "")
	file, sig, err := sshsig.SplitBundle(sshsig.Bundle(seven, sign(t, admin, sshsig.Namespace, seven)))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ApplyPeerFile(ctx, "etcd://test/peers", file, sig); err != nil {
		t.Fatal(err)
	}
	if got := peerNames(d); got != "serial 7 [a b c]" {
		t.Fatalf("after ApplyPeerFile: %s", got)
	}
	if st := d.Status(); st.PeerFileSerial != 7 {
		t.Errorf("status serial %d, want 7", st.PeerFileSerial)
	}
	logs.take()
	err = d.ApplyPeerFile(ctx, "etcd://test/peers", newer, sign(t, admin, sshsig.Namespace, newer))
	if line := logs.take(); err == nil || !strings.Contains(line, "file=etcd://test/peers reason=rollback serial=6 running_serial=7") {
		t.Errorf("rollback through ApplyPeerFile: %v, logged %q", err, line)
	}
	if s := mustRead(t, cfg.TrustState); !strings.HasPrefix(s, "serial 7 sha256 ") {
		t.Errorf("state after serial 7: %q", s)
	}

	// A restart remembers serial 7: the file on disk (serial 6) is refused.
	d.Close()
	if d, err = New(ctx, cfg); err == nil {
		t.Fatal("restarted on serial 6 after running 7")
	} else if !strings.Contains(err.Error(), "refused (rollback): serial 6 is lower than the running 7") {
		t.Fatalf("restart on serial 6: %v", err)
	}
	write(seven, sign(t, admin, sshsig.Namespace, seven))
	if d, err = New(ctx, cfg); err != nil {
		t.Fatalf("restart on serial 7: %v", err)
	}
	if got := peerNames(d); got != "serial 7 [a b c]" {
		t.Fatalf("after the restart: %s", got)
	}

	// Key rotation takes a reload: a file signed by a key added to the
	// trust file applies, one signed by the retired key no longer does.
	successor := newAdmin(t)
	if err := os.WriteFile(cfg.Trust, append([]byte("successor@nodewire "), ssh.MarshalAuthorizedKey(successor.PublicKey())...), 0o644); err != nil {
		t.Fatal(err)
	}
	eight := version(three, 8, "")
	write(eight, sign(t, admin, sshsig.Namespace, eight))
	var r *peers.RefusedError
	logs.take()
	if err := d.Reload(ctx); !errors.As(err, &r) || r.Reason != peers.ReasonUntrustedKey {
		t.Fatalf("reload signed by the retired key: %v", err)
	}
	if line := logs.take(); !strings.Contains(line, `msg="trust file reloaded" trust=`+cfg.Trust+" keys=1 before=1") {
		t.Errorf("trust reload logged as %q", line)
	}
	write(eight, sign(t, successor, sshsig.Namespace, eight))
	if err := d.Reload(ctx); err != nil {
		t.Fatalf("reload signed by the new key: %v", err)
	}
	// A trust file that no longer reads keeps the keys in use.
	if err := os.WriteFile(cfg.Trust, []byte("successor@nodewire ssh-ed25519 AAAA-broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nine := version(three, 9, "")
	write(nine, sign(t, successor, sshsig.Namespace, nine))
	if err := d.Reload(ctx); err != nil {
		t.Fatalf("reload with a broken trust file: %v", err)
	}
	if line := logs.take(); !strings.Contains(line, `msg="trust file not reloaded; still checking with the keys read before" trust=`+cfg.Trust+" keys=1") {
		t.Errorf("broken trust file logged as %q", line)
	}
	if got := peerNames(d); got != "serial 9 [a b c]" {
		t.Fatalf("after the reloads: %s", got)
	}
}

// TestDaemonTrustStartErrors: a trust setup that cannot be honoured stops
// the start with one line.
func TestDaemonTrustStartErrors(t *testing.T) {
	a, b := newTestHost(t), newTestHost(t)
	for _, tc := range []struct{ name, trust, state, want string }{
		{"no trust file", "", "", "trust file: open"},
		{"no key in it", "# nobody\n", "", "no trusted public key"},
		{"bad state", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8m5yyivWPkpDZ2+PqBnb8vQkVVsPUYd6M9W2D5qLWv admin\n", "serial x\n", "remove the file to accept any serial"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, a, b, "nwtest-trust")
			cfg.Trust = filepath.Join(dir, "admins.pub")
			cfg.TrustState = filepath.Join(dir, "applied")
			if tc.trust != "" {
				os.WriteFile(cfg.Trust, []byte(tc.trust), 0o644)
			}
			if tc.state != "" {
				os.WriteFile(cfg.TrustState, []byte(tc.state), 0o600)
			}
			d, err := New(context.Background(), cfg)
			if err == nil {
				d.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line containing %q", err, tc.want)
			}
		})
	}
}
