package main

import (
	"bufio"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/overlay/control"
)

// fakeDaemon answers every control request on a unix socket with st, as
// overlayd does: one JSON line in, one JSON line out.
func fakeDaemon(t *testing.T, st control.Status) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
				json.NewEncoder(c).Encode(map[string]any{"ok": true, "status": st})
			}
			c.Close()
		}
	}()
	return path
}

func TestStatusShowsMode(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		header string // the first line, exactly
	}{
		{"userspace", "pay-1 (network payments, userspace mode)  address 10.77.1.1  face 127.77.1.1  udp 51820  wg interface nw-pay-1"},
		{"tun", "pay-1 (network payments, tun mode)  address 10.77.1.1  face 127.77.1.1  udp 51820  wg interface nw-pay-1"},
		{"", "pay-1 (network payments)  address 10.77.1.1  face 127.77.1.1  udp 51820  wg interface nw-pay-1"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			st := control.Status{
				Self: "pay-1", Network: "payments", Mode: tc.mode, Address: "10.77.1.1", Face: "127.77.1.1",
				ListenPort: 51820, Interface: "nw-pay-1", PeerFile: "peers.yaml", LoadedAt: time.Now(),
				Peers: []control.PeerStatus{{Name: "pay-2", Network: "payments", Address: "10.77.1.2", Face: "127.77.1.2"}},
			}
			ctl := fakeDaemon(t, st)

			r := runCmd("", "status", "--control", ctl)
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("status: code %d, stderr %q", r.code, r.stderr)
			}
			if first, _, _ := strings.Cut(r.stdout, "\n"); first != tc.header {
				t.Errorf("status header\n got %q\nwant %q", first, tc.header)
			}

			r = runCmd("", "status", "--control", ctl, "--json")
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("status --json: code %d, stderr %q", r.code, r.stderr)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("status --json is not JSON: %v\n%s", err, r.stdout)
			}
			if got["mode"] != tc.mode {
				t.Errorf("status --json mode = %v, want %q", got["mode"], tc.mode)
			}
		})
	}
}

// A daemon following etcd shows the source: connected or not, the revision
// applied, refusals and the last error.
func TestStatusShowsSource(t *testing.T) {
	for _, tc := range []struct {
		src  control.SourceStatus
		want string
	}{
		{control.SourceStatus{URL: "etcd://10.0.0.5:2379/nw", Connected: true, Revision: 42},
			"source etcd://10.0.0.5:2379/nw: connected, revision 42 applied, 0 refused\n"},
		{control.SourceStatus{URL: "etcd://10.0.0.5:2379/nw", Revision: 42, Refused: 1, LastError: "probe: context deadline exceeded"},
			"source etcd://10.0.0.5:2379/nw: UNREACHABLE, running on the last good file, revision 42 applied, 1 refused; last error: probe: context deadline exceeded\n"},
	} {
		st := control.Status{Self: "pay-1", Network: "payments", Address: "10.77.1.1", Face: "127.77.1.1",
			ListenPort: 51820, Interface: "nw-pay-1", PeerFile: "state/peers.yaml", LoadedAt: time.Now(), Source: &tc.src}
		r := runCmd("", "status", "--control", fakeDaemon(t, st))
		if r.code != exitOK || !strings.Contains(r.stdout, tc.want) {
			t.Errorf("status with source %+v:\n%s\nwant a line %q", tc.src, r.stdout, tc.want)
		}
	}
}

// A peer the policy keeps out is no WireGuard peer: status lists it, says
// why it has no endpoint, and never "never" for a handshake it cannot have.
func TestStatusShowsUnreachable(t *testing.T) {
	st := control.Status{
		Self: "pay-1", Network: "payments", Mode: "userspace", Address: "10.77.1.1", Face: "127.77.1.1",
		ListenPort: 51820, Interface: "nw-pay-1", PeerFile: "peers.yaml", LoadedAt: time.Now(),
		Peers: []control.PeerStatus{
			{Name: "pay-2", Network: "payments", Address: "10.77.1.2", Face: "127.77.1.2"},
			{Name: "lab-1", Network: "lab", Address: "10.77.3.1", Face: "127.77.3.1", Unreachable: true, Denials: 2, DeniedIn: 2},
		},
	}
	r := runCmd("", "status", "--control", fakeDaemon(t, st))
	if r.code != exitOK {
		t.Fatalf("status: code %d, stderr %q", r.code, r.stderr)
	}
	var pay2, lab1 string
	for _, l := range strings.Split(r.stdout, "\n") {
		switch {
		case strings.HasPrefix(l, "pay-2 "):
			pay2 = strings.Join(strings.Fields(l), " ")
		case strings.HasPrefix(l, "lab-1 "):
			lab1 = strings.Join(strings.Fields(l), " ")
		}
	}
	if pay2 != "pay-2 payments 10.77.1.2 127.77.1.2 (none) never 0 B 0 B 0 0" {
		t.Errorf("pay-2 row %q", pay2)
	}
	if lab1 != "lab-1 lab 10.77.3.1 127.77.3.1 (unreachable: policy) - 0 B 0 B 0 2 (in 2, out 0)" {
		t.Errorf("lab-1 row %q\n%s", lab1, r.stdout)
	}
}
