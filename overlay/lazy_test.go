package overlay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodewire/nodewire/overlay/control"
	"github.com/nodewire/nodewire/peers"
)

// A host configures WireGuard peers only for its partners (the hosts the
// policy lets it exchange packets with, either way), and a reload adds and
// removes them as the policy changes. Status still lists every peer; one
// that is no WireGuard peer is marked unreachable.
func TestDaemonLazyPeers(t *testing.T) {
	a, b, c := newTestHost(t), newTestHost(t), newTestHost(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir, a, b, "nwtest-lazy")
	write := func(rules string) {
		t.Helper()
		text := fmt.Sprintf(`overlay: {prefix: 10.91.0.0/16, faces: 127.91.0.0/16}
networks:
  lab: {prefix: 10.91.1.0/24}
  far: {prefix: 10.91.2.0/24}
%speers:
  a: {network: lab, public_key: %s, address: 10.91.1.1, endpoint: 127.0.0.1:9}
  b: {network: lab, public_key: %s, address: 10.91.1.2, endpoint: 127.0.0.1:9}
  c: {network: far, public_key: %s, address: 10.91.2.1, endpoint: 127.0.0.1:9}
`, rules, a.pub, b.pub, c.pub)
		if err := os.WriteFile(filepath.Join(dir, "peers.yaml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cc := control.Client{Path: cfg.ControlPath}
	pubs := map[string]string{"a": a.pub, "c": c.pub}

	for _, step := range []struct {
		name, rules string
		wg          []string // WireGuard peers of b
		unreachable []string // in status, marked unreachable
	}{
		{"no rule: c is nobody's partner", "", []string{"a"}, []string{"c"}},
		{"c may reach lab one way: b needs c to answer", "interconnect:\n  - {from: far, to: lab, ports: [22]}\n", []string{"a", "c"}, nil},
		{"b may reach c one way", "interconnect:\n  - {from: b, to: c, ports: [erlang]}\n", []string{"a", "c"}, nil},
		{"a rule for a only", "interconnect:\n  - {from: a, to: c}\n", []string{"a"}, []string{"c"}},
		{"rule gone", "", []string{"a"}, []string{"c"}},
	} {
		t.Run(step.name, func(t *testing.T) {
			write(step.rules)
			if err := cc.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			text, err := d.dev.IpcGet()
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(text, "public_key="); n != len(step.wg) {
				t.Errorf("device has %d peers, want %d (%v):\n%s", n, len(step.wg), step.wg, text)
			}
			for _, name := range step.wg {
				k, err := peers.ParseKey(pubs[name])
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(text, "public_key="+k.Hex()+"\n") {
					t.Errorf("%s is no WireGuard peer; want it:\n%s", name, text)
				}
			}
			st, err := cc.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range st.Peers {
				if p.Unreachable {
					got = append(got, p.Name)
				}
			}
			if len(st.Peers) != 2 || fmt.Sprint(got) != fmt.Sprint(step.unreachable) {
				t.Errorf("status: %d peers, unreachable %v; want 2, %v", len(st.Peers), got, step.unreachable)
			}
		})
	}
}
