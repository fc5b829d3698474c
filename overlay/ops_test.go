package overlay

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/overlay/control"
	"github.com/nodewire/nodewire/peers"
)

func TestCheckMetricsAddr(t *testing.T) {
	tests := []struct {
		addr   string
		public bool
		errHas string
	}{
		{"127.0.0.1:9101", false, ""},
		{"127.77.1.1:9101", false, ""},
		{"[::1]:9101", false, ""},
		{"localhost:9101", false, ""},
		{"0.0.0.0:9101", false, "not a loopback address"},
		{":9101", false, "not a loopback address"},
		{"10.0.0.5:9101", false, "--metrics-public"},
		{"0.0.0.0:9101", true, ""},
		{"9101", false, "want HOST:PORT"},
	}
	for _, tc := range tests {
		err := checkMetricsAddr(tc.addr, tc.public)
		if tc.errHas == "" && err != nil || tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
			t.Errorf("checkMetricsAddr(%q, %v) = %v, want %q", tc.addr, tc.public, err, tc.errHas)
		}
	}
}

// TestDaemonOps: metrics over HTTP, explain over the control socket, and a
// key rotated by a reload.
func TestDaemonOps(t *testing.T) {
	a, b := newTestHost(t), newTestHost(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir, a, b, "nwtest-ops")
	cfg.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cc := control.Client{Path: cfg.ControlPath}

	scrape := func() string {
		t.Helper()
		resp, err := http.Get("http://" + cfg.MetricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("GET /metrics: %s %s", resp.Status, resp.Header.Get("Content-Type"))
		}
		return string(body)
	}
	m := scrape()
	for _, want := range []string{
		`nodewire_up{self="b",network="lab",address="10.91.1.2",face="127.91.1.2"} 1`,
		`nodewire_peer_info{peer="a",network="lab",address="10.91.1.1",face="127.91.1.1"} 1`,
		`nodewire_peer_wireguard_tx_bytes_total{peer="a"} `,
		`nodewire_peer_last_handshake_seconds{peer="a"} 0`,
		`nodewire_peer_transport{peer="a",transport="udp"} 1`,
		`nodewire_peer_transport{peer="a",transport="tcp"} 0`,
		`nodewire_peer_connections_open{peer="a"} 0`,
		`nodewire_peer_denials_total{peer="a",dir="in"} 0`,
		`nodewire_reloads_total{result="ok"} 0`,
		`nodewire_reloads_total{result="error"} 0`,
		"# TYPE nodewire_policy_decisions_total counter",
		"# TYPE nodewire_epmd_requests_total counter",
		`nodewire_stack_packets_total{dir="rx"} `,
		`nodewire_stack_dropped_packets_total{where="link"} 0`,
		`nodewire_stack_tcp_retransmits_total{kind="timeout"} `,
		"nodewire_udp_receive_drops_total 0",
		"nodewire_last_reload_ok 1",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}

	// A rejected reload shows in the metrics.
	good := mustRead(t, cfg.PeerFile)
	os.WriteFile(cfg.PeerFile, []byte(good+"bogus: 1\n"), 0o644)
	if err := cc.Reload(ctx); err == nil {
		t.Fatal("bad file accepted")
	}
	m = scrape()
	if !strings.Contains(m, `nodewire_reloads_total{result="error"} 1`) || !strings.Contains(m, "nodewire_last_reload_ok 0") {
		t.Errorf("a rejected reload is not counted:\n%s", m)
	}
	os.WriteFile(cfg.PeerFile, []byte(good), 0o644)

	t.Run("explain", func(t *testing.T) {
		ex, err := cc.Explain(ctx, "a", "b", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !ex.Allow || !strings.HasPrefix(ex.Decision, "allow same network lab") || !ex.Known || !ex.Erlang {
			t.Errorf("explain a b: %+v", ex)
		}
		if _, err := cc.Explain(ctx, "a", "lab", 0); err == nil || !strings.Contains(err.Error(), "lab is a network") {
			t.Errorf("explain a lab: %v", err)
		}
	})

	t.Run("ping", func(t *testing.T) {
		// a's endpoint has no WireGuard behind it: the echo goes out and
		// nothing answers.
		r, err := cc.Ping(ctx, "a", 1, 200*time.Millisecond)
		if err != nil || r.Replied || r.Peer != "a" || r.Address != "10.91.1.1" || r.From != "b" || r.Seq != 1 {
			t.Errorf("ping a (no answer): %+v, %v", r, err)
		}
		for _, tc := range []struct{ to, err string }{
			{"b", "overlayd ping: b is this host"},
			{"lab", "overlayd ping: no peer lab in " + cfg.PeerFile + " (lab is a network; ping takes a peer)"},
			{"c", "overlayd ping: b may not ping c: deny default (no rule allows lab -> ops on any port, which ping needs)"},
		} {
			if tc.to == "c" {
				c := newTestHost(t)
				other := strings.Replace(good, "  lab: {prefix: 10.91.1.0/24}\n", "  lab: {prefix: 10.91.1.0/24}\n  ops: {prefix: 10.91.2.0/24}\n", 1) +
					"  c: {network: ops, public_key: " + c.pub + ", address: 10.91.2.1}\n"
				os.WriteFile(cfg.PeerFile, []byte(other), 0o644)
				if err := cc.Reload(ctx); err != nil {
					t.Fatal(err)
				}
				defer func() {
					os.WriteFile(cfg.PeerFile, []byte(good), 0o644)
					if err := cc.Reload(ctx); err != nil {
						t.Fatal(err)
					}
				}()
			}
			if r, err := cc.Ping(ctx, tc.to, 1, 0); err == nil || err.Error() != tc.err {
				t.Errorf("ping %s: %+v, %v\nwant error %q", tc.to, r, err, tc.err)
			}
		}
	})

	t.Run("rotate key on reload", func(t *testing.T) {
		n := newTestHost(t)
		if err := os.WriteFile(cfg.PrivateKeyFile, []byte(n.priv+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(cfg.PeerFile, []byte(strings.Replace(good, b.pub, n.pub, 1)), 0o644)
		if err := cc.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := cc.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.PublicKey != n.pub {
			t.Errorf("public key after rotation %s, want %s", st.PublicKey, n.pub)
		}
		text, _ := d.dev.IpcGet()
		if !strings.Contains(text, "private_key="+hexKey(t, n.priv)) {
			t.Errorf("device still has the old private key:\n%s\nwant %s", text, hexKey(t, n.priv))
		}
		// A file naming a key the key file does not hold is refused.
		o := newTestHost(t)
		os.WriteFile(cfg.PeerFile, []byte(strings.Replace(good, b.pub, o.pub, 1)), 0o644)
		if err := cc.Reload(ctx); err == nil || !strings.Contains(err.Error(), "does not match the private key") {
			t.Errorf("reload with a foreign key: %v", err)
		}
	})
}

func hexKey(t *testing.T, b64 string) string {
	t.Helper()
	k, err := parseKeyForTest(b64)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// parseKeyForTest returns a private key in hex as WireGuard reports it:
// clamped.
func parseKeyForTest(b64 string) (string, error) {
	k, err := peers.ParseKey(b64)
	k[0] &= 248
	k[31] = k[31]&127 | 64
	return k.Hex(), err
}
