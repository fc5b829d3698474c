package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
	"github.com/nodewire/nodewire/overlay/control"
)

// TestErlangHosts is Erlang discovery from the peer file, in userspace
// mode and in TUN mode: each overlayd keeps --erlang-hosts at $HOME/.hosts.erlang of its
// host's node, and stock net_adm:world() there finds exactly the nodes the
// policy lets that host reach. Networks payments (pay-1, pay-2),
// monitoring (mon-1) and lab (lab-1); monitoring reaches payments' Erlang
// ports one way, lab reaches nobody. Then a rule lab -> payments arrives
// by reload: lab-1 becomes a WireGuard peer of the payments hosts (lazy
// peers) and its world grows, with no restart.
func TestErlangHosts(t *testing.T) {
	cluster.Require(t)
	for _, mode := range []string{"userspace", "tun"} {
		t.Run(mode, func(t *testing.T) { testErlangHosts(t, mode) })
	}
}

func testErlangHosts(t *testing.T, mode string) {
	c := cluster.New(t, "eh"+mode[:3])
	o := cluster.NewOverlay(c, t, "10.77.0.0/16")
	for _, nw := range []string{"payments", "monitoring", "lab"} {
		_, err := o.Run("add-network", "--file", o.File, "--name", nw)
		must(t, err)
	}
	_, err := o.Run("allow", "--file", o.File, "--from", "monitoring", "--to", "payments", "--ports", "erlang")
	must(t, err)
	o.DaemonArgs = func(oh *cluster.OverlayHost) []string {
		return []string{"--erlang-hosts", filepath.Join(oh.Dir, ".hosts.erlang")}
	}
	var hosts []*cluster.OverlayHost
	for _, p := range []struct{ name, network string }{{"pay-1", "payments"}, {"pay-2", "payments"}, {"mon-1", "monitoring"}, {"lab-1", "lab"}} {
		h, err := o.AddPeer(strings.ReplaceAll(p.name, "-", ""), p.name, p.network, "--mode", mode)
		must(t, err)
		hosts = append(hosts, h)
	}
	for _, h := range hosts {
		must(t, o.StartDaemon(h))
	}
	for _, h := range hosts {
		// net_adm:world() reads $HOME/.hosts.erlang (after ./.hosts.erlang,
		// which the node's working directory does not have).
		h.ErlEnv = []string{"HOME=" + h.Dir}
		must(t, o.StartErlang(h))
	}
	pay1, pay2, mon1, lab1 := hosts[0], hosts[1], hosts[2], hosts[3]
	node := func(hs ...*cluster.OverlayHost) string {
		var names []string
		for _, h := range hs {
			names = append(names, h.Node.Name)
		}
		slices.Sort(names)
		var atoms []string
		for _, n := range names {
			atoms = append(atoms, cluster.Atom(n))
		}
		return "[" + strings.Join(atoms, ",") + "]"
	}
	world := func(t *testing.T, h *cluster.OverlayHost, want string) {
		t.Helper()
		if got := eval(t, h.Node, "lists:sort(net_adm:world())."); got != want {
			hostsFile, _ := os.ReadFile(filepath.Join(h.Dir, ".hosts.erlang"))
			t.Errorf("net_adm:world() on %s = %s, want %s\n.hosts.erlang:\n%s", h.Peer, got, want, hostsFile)
		}
	}
	unreachable := func(t *testing.T, h *cluster.OverlayHost) []string {
		t.Helper()
		st, err := control.Client{Path: h.Control}.Status(ctxFor(t, 10*time.Second))
		must(t, err)
		var out []string
		for _, p := range st.Peers {
			if p.Unreachable {
				out = append(out, p.Name)
			}
		}
		return out
	}

	t.Run("world is what the policy allows", func(t *testing.T) {
		world(t, pay1, node(pay1, pay2))
		world(t, pay2, node(pay1, pay2))
		world(t, mon1, node(pay1, pay2, mon1))
		world(t, lab1, node(lab1))
		for _, h := range []*cluster.OverlayHost{pay1, mon1} {
			if got := unreachable(t, h); !slices.Equal(got, []string{"lab-1"}) {
				t.Errorf("%s: status shows %v unreachable, want [lab-1]", h.Peer, got)
			}
		}
		if got := unreachable(t, lab1); !slices.Equal(got, []string{"pay-1", "pay-2", "mon-1"}) {
			t.Errorf("lab-1: status shows %v unreachable, want every other peer", got)
		}
	})

	t.Run("a reload widens it", func(t *testing.T) {
		_, err := o.Run("allow", "--file", o.File, "--from", "lab", "--to", "payments", "--ports", "erlang")
		must(t, err)
		for _, h := range hosts {
			must(t, o.CopyFile(h))
			_, err := o.Run("reload", "--control", h.Control)
			must(t, err)
		}
		world(t, lab1, node(pay1, pay2, lab1))
		world(t, pay1, node(pay1, pay2))
		if got := unreachable(t, pay1); len(got) != 0 {
			t.Errorf("pay-1: status shows %v unreachable after the rule, want none", got)
		}
		if got := unreachable(t, mon1); !slices.Equal(got, []string{"lab-1"}) {
			t.Errorf("mon-1: status shows %v unreachable, want [lab-1]", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if ok, err := lab1.Node.Ping(ctx, pay1.Node.Name); err != nil || !ok {
			t.Errorf("lab-1 -> pay-1 after the rule: pong %v, %v", ok, err)
		}
	})
}
