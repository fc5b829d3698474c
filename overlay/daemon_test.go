package overlay

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodewire/nodewire/overlay/control"
)

// testHost is a key pair as `wg genkey`/`wg pubkey` would make it.
type testHost struct{ priv, pub string }

func newTestHost(t *testing.T) testHost {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testHost{base64.StdEncoding.EncodeToString(k.Bytes()), base64.StdEncoding.EncodeToString(k.PublicKey().Bytes())}
}

// freePort returns a port that was free on both TCP and UDP a moment ago.
func freePort(t testing.TB) uint16 {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if u, err := net.ListenUDP("udp", &net.UDPAddr{Port: port}); err == nil {
			u.Close()
			return uint16(port)
		}
	}
	t.Fatal("no free port")
	return 0
}

// peerFile writes a peer file with self (b) and the given others; faces in
// 127.91/16 so the test never touches the machine's real faces.
func peerFile(t *testing.T, dir string, hosts map[string]testHost, extra string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("overlay: {prefix: 10.91.0.0/16, faces: 127.91.0.0/16}\nnetworks:\n  lab: {prefix: 10.91.1.0/24}\npeers:\n")
	i := 1
	for _, name := range []string{"a", "b", "c"} {
		h, ok := hosts[name]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "  %s: {network: lab, public_key: %s, address: 10.91.1.%d, endpoint: 127.0.0.1:9}\n", name, h.pub, i)
		i++
	}
	b.WriteString(extra)
	path := filepath.Join(dir, "peers.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDaemonRefusesToStart(t *testing.T) {
	a, b := newTestHost(t), newTestHost(t)
	tests := []struct {
		name   string
		setup  func(t *testing.T, cfg *Config, dir string)
		errHas string
	}{
		{"key readable by others", func(t *testing.T, cfg *Config, dir string) {
			os.Chmod(cfg.PrivateKeyFile, 0o644)
		}, "lets others read it"},
		{"invalid peer file", func(t *testing.T, cfg *Config, dir string) {
			bad := strings.Replace(mustRead(t, cfg.PeerFile), "address: 10.91.1.2", "address: 10.92.1.2", 1)
			os.WriteFile(cfg.PeerFile, []byte(bad), 0o644)
		}, "peers.yaml:6: peers.b.address: 10.92.1.2 is outside network lab"},
		{"self not in the file", func(t *testing.T, cfg *Config, dir string) { cfg.Self = "zz" }, `no peer named "zz"`},
		{"key is not self's", func(t *testing.T, cfg *Config, dir string) { cfg.Self = "a" }, "does not match the private key"},
		{"UDP port taken", func(t *testing.T, cfg *Config, dir string) {
			u, err := net.ListenUDP("udp", &net.UDPAddr{Port: int(cfg.ListenPort)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { u.Close() })
		}, "UDP port"},
		{"a face port held on the wildcard address", func(t *testing.T, cfg *Config, dir string) {
			l, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", cfg.EPMDPort))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}, "ERL_EPMD_ADDRESS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, a, b, "nwtest-refuse")
			tt.setup(t, &cfg, dir)
			d, err := New(context.Background(), cfg)
			if err == nil {
				d.Close()
				t.Fatalf("started; want an error containing %q", tt.errHas)
			}
			if !strings.Contains(err.Error(), tt.errHas) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line containing %q", err, tt.errHas)
			}
			// Nothing left open: the control socket was never made or is gone.
			if _, err := net.Dial("unix", cfg.ControlPath); err == nil {
				t.Error("control socket still answers after a refused start")
			}
		})
	}
}

func TestDaemonReloadAndStatus(t *testing.T) {
	a, b, c := newTestHost(t), newTestHost(t), newTestHost(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir, a, b, "nwtest-reload")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cc := control.Client{Path: cfg.ControlPath}

	peerNames := func() []string {
		st, err := cc.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range st.Peers {
			names = append(names, p.Name)
		}
		return names
	}
	if got := fmt.Sprint(peerNames()); got != "[a]" {
		t.Fatalf("peers at start: %s", got)
	}

	// A third peer appears: the device learns it as a difference.
	peerFile(t, dir, map[string]testHost{"a": a, "b": b, "c": c}, "")
	if err := cc.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(peerNames()); got != "[a c]" {
		t.Fatalf("peers after reload: %s", got)
	}
	text, err := d.dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(text, "public_key="); n != 2 {
		t.Fatalf("device has %d peers, want 2:\n%s", n, text)
	}

	// A bad file is refused; the daemon keeps the last good one.
	peerFile(t, dir, map[string]testHost{"a": a, "b": b, "c": c}, "bogus: 1\n")
	err = cc.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("reload of a bad file: %v", err)
	}
	st, err := cc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Peers) != 2 || st.ReloadErr == "" || st.Reloads != 1 {
		t.Fatalf("after a rejected reload: %d peers, reloads %d, error %q", len(st.Peers), st.Reloads, st.ReloadErr)
	}
	if st.Mode != "userspace" {
		t.Errorf("status mode %q, want userspace", st.Mode)
	}

	// Moving this host is refused: it would need a new stack.
	moved := strings.Replace(mustRead(t, cfg.PeerFile), "bogus: 1\n", "", 1)
	moved = strings.Replace(moved, "address: 10.91.1.2", "address: 10.91.1.9", 1)
	os.WriteFile(cfg.PeerFile, []byte(moved), 0o644)
	if err := cc.Reload(ctx); err == nil || !strings.Contains(err.Error(), "restart overlayd") {
		t.Fatalf("reload moving self: %v", err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testConfig is a daemon "b" in a two-peer file with a, on free ports, its
// key written 0600, logging discarded.
func testConfig(t *testing.T, dir string, a, b testHost, iface string) Config {
	t.Helper()
	cfg := Config{
		PeerFile:       peerFile(t, dir, map[string]testHost{"a": a, "b": b}, ""),
		Self:           "b",
		PrivateKeyFile: filepath.Join(dir, "key"),
		ListenPort:     freePort(t),
		EPMDPort:       freePort(t),
		ControlPath:    filepath.Join(dir, "ctl.sock"),
		Interface:      iface,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if err := os.WriteFile(cfg.PrivateKeyFile, []byte(b.priv+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}
