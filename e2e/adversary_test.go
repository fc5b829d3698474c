package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
	"github.com/nodewire/nodewire/overlay/control"
	"github.com/nodewire/nodewire/peers"
)

// attackTools builds the adversary (e2e/nwattack) and finds stock
// wireguard-go: Debian's package (e2e/deps.sh), not the module this repo
// builds with, which is a trimmed, patched copy without its command.
func attackTools(t *testing.T) (nwattack, wireguardGo string) {
	wgGo, err := exec.LookPath("wireguard-go")
	if err != nil {
		t.Fatalf("stock wireguard-go (Debian's wireguard-go, installed by e2e/deps.sh): %v", err)
	}
	bins := cluster.BuildBinaries(t, "github.com/nodewire/nodewire/e2e/nwattack")
	return bins["nwattack"], wgGo
}

// words parses nwattack's "k=v k=v" line.
func words(t *testing.T, out string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, f := range strings.Fields(out) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(v); err == nil {
			m[k] = n
		}
	}
	return m
}

func status(t *testing.T, h *cluster.OverlayHost) *control.Status {
	t.Helper()
	st, err := control.Client{Path: h.Control}.Status(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatalf("status of %s: %v", h.Peer, err)
	}
	return st
}

func peerStatus(t *testing.T, h *cluster.OverlayHost, peer string) control.PeerStatus {
	t.Helper()
	for _, p := range status(t, h).Peers {
		if p.Name == peer {
			return p
		}
	}
	t.Fatalf("%s's status has no peer %s", h.Peer, peer)
	return control.PeerStatus{}
}

// rawTarget is p as a peer of a stock WireGuard host.
func rawTarget(t *testing.T, o *cluster.Overlay, f *peers.File, h *cluster.OverlayHost) cluster.RawPeerTarget {
	p := f.Peer(h.Peer)
	return cluster.RawPeerTarget{PublicKey: pubkey(t, o, h), Endpoint: netip.AddrPortFrom(h.Addr, 51820), Allowed: netip.PrefixFrom(p.Address, 32)}
}

// freshPing disconnects from and pings other: a new distribution
// connection through both daemons. It returns how long the ping took.
func freshPing(t *testing.T, from, to *cluster.OverlayHost) time.Duration {
	t.Helper()
	eval(t, from.Node, fmt.Sprintf("erlang:disconnect_node(%s)", cluster.Atom(to.Node.Name)))
	began := time.Now()
	if got := eval(t, from.Node, fmt.Sprintf("net_adm:ping(%s)", cluster.Atom(to.Node.Name))); got != "pong" {
		t.Fatalf("%s -> %s: %s, want pong", from.Peer, to.Peer, got)
	}
	return time.Since(began)
}

// TestAdversaries attacks one host (adv-a1) from peers that do not run
// overlayd: stock wireguard-go hosts with the Linux stack, sending raw
// packets. Networks alpha (a1, a2, a3 run overlayd; ax is a hostile member)
// and beta (bx, hostile, no rule to alpha); ex has a key nobody knows.
func TestAdversaries(t *testing.T) {
	cluster.Require(t)
	start := time.Now()
	nwattack, wgGo := attackTools(t)
	c := cluster.New(t, "adv")
	o := cluster.NewOverlay(c, t, "10.78.0.0/16")
	for _, args := range [][]string{
		{"add-network", "--file", o.File, "--name", "alpha", "--prefix", "10.78.1.0/24"},
		{"add-network", "--file", o.File, "--name", "beta", "--prefix", "10.78.2.0/24"},
	} {
		_, err := o.Run(args...)
		must(t, err)
	}
	add := func(host, peer, network string) *cluster.OverlayHost {
		h, err := o.AddPeer(host, peer, network)
		must(t, err)
		return h
	}
	a1, a2, a3 := add("a1", "adv-a1", "alpha"), add("a2", "adv-a2", "alpha"), add("a3", "adv-a3", "alpha")
	ax, bx := add("ax", "adv-ax", "alpha"), add("bx", "adv-bx", "beta")
	ex := c.AddHost("ex")
	f, err := peers.Load(o.File)
	must(t, err)

	// wireguard-go says why it drops a packet at debug only (the last
	// --log-level wins).
	o.DaemonArgs = func(h *cluster.OverlayHost) []string {
		if h == a1 {
			return []string{"--log-level", "debug"}
		}
		return nil
	}
	for _, h := range []*cluster.OverlayHost{a1, a2, a3} {
		must(t, o.StartDaemon(h))
		must(t, o.StartErlang(h))
	}
	targets := []cluster.RawPeerTarget{rawTarget(t, o, f, a1), rawTarget(t, o, f, a2), rawTarget(t, o, f, a3)}
	axRaw, err := cluster.StartRawPeer(ax.Host, wgGo, ax.KeyFile, f.Peer(ax.Peer).Address, f.Overlay.Prefix, targets)
	must(t, err)
	bxRaw, err := cluster.StartRawPeer(bx.Host, wgGo, bx.KeyFile, f.Peer(bx.Peer).Address, f.Overlay.Prefix, targets[:1])
	must(t, err)
	exKey := filepath.Join(c.Dir(), "ex.key")
	key, err := o.Run("genkey")
	must(t, err)
	must(t, os.WriteFile(exKey, []byte(key), 0o600))
	exAddr := netip.MustParseAddr("10.78.1.200") // unused address of alpha
	exRaw, err := cluster.StartRawPeer(ex, wgGo, exKey, exAddr, f.Overlay.Prefix, targets[:1])
	must(t, err)

	a1Addr := f.Peer(a1.Peer).Address.String()
	attack := func(h *cluster.Host, d time.Duration, args ...string) map[string]int {
		t.Helper()
		out, err := h.Exec(ctxFor(t, d), append([]string{nwattack}, args...)...)
		if err != nil {
			t.Fatalf("nwattack %s: %v", strings.Join(args, " "), err)
		}
		t.Logf("%s: nwattack %s: %s", h.Name, strings.Join(args, " "), strings.TrimSpace(string(out)))
		return words(t, string(out))
	}
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))

	t.Run("a key not in the peer file gets no handshake and reaches nothing", func(t *testing.T) {
		got := attack(exRaw.Host, time.Minute, "syn", "-src", exAddr.String(), "-dst", a1Addr, "-ports", "4369", "-per", "3", "-wait", "6s")
		if got["synack"] != 0 || got["rst"] != 0 {
			t.Fatalf("an unknown key got answers: %v", got)
		}
		out, err := ex.Exec(ctxFor(t, 10*time.Second), "wg", "show", exRaw.Dev, "latest-handshakes")
		must(t, err)
		if f := strings.Fields(string(out)); len(f) != 2 || f[1] != "0" {
			t.Fatalf("wg show latest-handshakes on the unknown host: %q, want a handshake time of 0", out)
		}
		for _, p := range status(t, a1).Peers {
			if p.Endpoint == netip.AddrPortFrom(ex.Addr, 51820).String() {
				t.Fatalf("a1 knows the unknown host as %s", p.Name)
			}
		}
	})

	t.Run("a peer forging another peer's inner source address is dropped", func(t *testing.T) {
		// Control: with its own address ax is answered (same network).
		if got := attack(axRaw.Host, time.Minute, "syn", "-src", axRaw.Address.String(), "-dst", a1Addr, "-ports", "4369", "-per", "2", "-wait", "3s"); got["synack"] == 0 {
			t.Fatalf("ax with its own address got no SYN-ACK: %v", got)
		}
		before := peerStatus(t, a1, a2.Peer)
		for _, forged := range []string{f.Peer(a2.Peer).Address.String(), f.Peer(bx.Peer).Address.String(), "10.78.9.9"} {
			attack(axRaw.Host, time.Minute, "syn", "-src", forged, "-dst", a1Addr, "-ports", "4369", "-per", "5", "-wait", "2s")
		}
		ctx := ctxFor(t, 10*time.Second)
		if err := cluster.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
			return strings.Count(a1.Daemon.Log(), "packet with disallowed source address") >= 3, nil
		}); err != nil {
			t.Fatalf("a1's WireGuard did not report dropping the forged packets:\n%s", a1.Daemon.Tail(30))
		}
		after := peerStatus(t, a1, a2.Peer)
		if after.Denials != before.Denials || after.OpenConns != before.OpenConns {
			t.Fatalf("forged packets reached a1's stack as a2's: before %+v after %+v", before, after)
		}
	})

	t.Run("EPMD ALIVE2, KILL, STOP and DUMP from a peer are refused", func(t *testing.T) {
		before := eval(t, a1.Node, "erl_epmd:names()")
		face := strings.ReplaceAll(a1.Face, ".", ",")
		for _, req := range []struct{ body, name string }{
			{`<<120, 9999:16, 77, 0, 6:16, 5:16, 4:16, "evil", 0:16>>`, "ALIVE2_REQ"},
			{`<<107>>`, "KILL_REQ"},
			{`<<115, "app">>`, "STOP_REQ"},
			{`<<100>>`, "DUMP_REQ"},
		} {
			expr := fmt.Sprintf(`Body = %s, {ok, S} = gen_tcp:connect({%s}, 4369, [binary, {active, false}], 5000), ok = gen_tcp:send(S, [<<(byte_size(Body)):16>>, Body]), R = gen_tcp:recv(S, 0, 5000), gen_tcp:close(S), R`, req.body, face)
			if got := eval(t, a2.Node, expr); strings.HasPrefix(got, "{ok,") {
				t.Errorf("%s got an answer %s: it reached epmd", req.name, got)
			}
			ctx := ctxFor(t, 10*time.Second)
			if err := cluster.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
				return strings.Contains(a1.Daemon.Log(), "EPMD "+req.name+" refused"), nil
			}); err != nil {
				t.Errorf("a1's log does not record the refused %s", req.name)
			}
		}
		if after := eval(t, a1.Node, "erl_epmd:names()"); after != before {
			t.Fatalf("a1's epmd changed: before %s, after %s", before, after)
		}
		freshPing(t, a2, a1)
	})

	t.Run("a node that knows the cookie but names another peer's host is refused", func(t *testing.T) {
		// On a3, beside its own node, an impostor calling itself a node of
		// a2 (same cookie, same epmd, same flags).
		fake, err := a3.StartNode(cluster.NodeOptions{Name: "app2@" + a2.Face, Env: a3.ErlEnv, Args: a3.ErlArgs})
		must(t, err)
		before := peerStatus(t, a1, a3.Peer).Denials
		if got := eval(t, fake, fmt.Sprintf("net_adm:ping(%s)", cluster.Atom(a1.Node.Name))); got != "pang" {
			t.Fatalf("impostor app2@%s (on a3) -> a1: %s, want pang", a2.Face, got)
		}
		if got := eval(t, a1.Node, fmt.Sprintf("lists:member(%s, nodes(connected))", cluster.Atom(fake.Name))); got != "false" {
			t.Fatal("a1 is connected to the impostor")
		}
		ctx := ctxFor(t, 10*time.Second)
		if err := cluster.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
			return strings.Contains(a1.Daemon.Log(), fmt.Sprintf(`node name \"app2@%s\" is not peer %s's`, a2.Face, a3.Peer)), nil
		}); err != nil {
			t.Fatalf("a1's log does not name the refused impostor:\n%s", a1.Daemon.Tail(20))
		}
		if after := peerStatus(t, a1, a3.Peer).Denials; after <= before {
			t.Errorf("a1's denials for a3: %d -> %d", before, after)
		}
		// The honest node on the same host still gets in.
		freshPing(t, a3, a1)
	})

	t.Run("a denied network probing every port gets no answer; denials logged, rate-limited", func(t *testing.T) {
		linesBefore := strings.Count(a1.Daemon.Log(), "from="+bx.Peer)
		before := peerStatus(t, a1, bx.Peer).Denials
		began := time.Now()
		got := attack(bxRaw.Host, 5*time.Minute, "syn", "-src", bxRaw.Address.String(), "-dst", a1Addr, "-ports", "1-65535", "-wait", "5s")
		if got["sent"] != 65535 || got["synack"] != 0 {
			t.Fatalf("scan of every port from beta: %v, want 65535 sent and no SYN-ACK", got)
		}
		denials := peerStatus(t, a1, bx.Peer).Denials - before
		lines := strings.Count(a1.Daemon.Log(), "from="+bx.Peer) - linesBefore
		t.Logf("scan took %v: %d resets, %d denials counted by a1, %d log lines", time.Since(began).Round(time.Millisecond), got["rst"], denials, lines)
		if denials == 0 || lines == 0 {
			t.Fatalf("denials not recorded: %d counted, %d lines", denials, lines)
		}
		if lines > 60 {
			t.Fatalf("%d log lines for one scan: not rate-limited", lines)
		}
	})

	t.Run("a flood of half-open connections from one peer is bounded; other peers unaffected", func(t *testing.T) {
		// ax drops its own resets, so the SYN-ACKs it gets leave a1 with
		// half-open connections that a1's stack keeps retrying.
		for _, argv := range [][]string{
			{"nft", "add", "table", "inet", "nwattack"},
			{"nft", "add", "chain", "inet", "nwattack", "out", "{ type filter hook output priority 0; }"},
			{"nft", "add", "rule", "inet", "nwattack", "out", "tcp", "flags", "rst", "drop"},
		} {
			_, err := ax.Exec(ctxFor(t, 10*time.Second), argv...)
			must(t, err)
		}
		before := peerStatus(t, a1, ax.Peer).Denials
		var wg sync.WaitGroup
		var flood map[string]int
		wg.Add(1)
		go func() {
			defer wg.Done()
			flood = attack(axRaw.Host, 2*time.Minute, "syn", "-src", axRaw.Address.String(), "-dst", a1Addr, "-ports", "4369", "-per", "2000", "-wait", "4s")
		}()
		// While the flood runs and after, a2 and a3 open new connections to a1.
		var during []time.Duration
		for range 3 {
			during = append(during, freshPing(t, a2, a1))
		}
		wg.Wait()
		after := freshPing(t, a3, a1)
		denied := peerStatus(t, a1, ax.Peer).Denials - before
		t.Logf("flood: %v; a1 refused %d as over the bound; fresh pings a2->a1 during %v, a3->a1 after %v", flood, denied, during, after)
		if flood["synack"] > 128+8 {
			t.Fatalf("a1 answered %d half-open connections from one peer; the bound is 128", flood["synack"])
		}
		if flood["synack"] == 0 || denied == 0 {
			t.Fatalf("flood not seen as such: %d SYN-ACKs, %d refused", flood["synack"], denied)
		}
		for _, d := range append(during, after) {
			if d > 5*time.Second {
				t.Fatalf("a fresh ping took %v during the flood", d)
			}
		}
	})

	t.Run("a handshake flood engages WireGuard's cookies; established peers keep working", func(t *testing.T) {
		freshPing(t, a2, a1)
		pub := pubkey(t, o, a1)
		var wg sync.WaitGroup
		var flood map[string]int
		floodCtx, stop := context.WithCancel(context.Background())
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer stop()
			flood = attack(bxRaw.Host, time.Minute, "hsflood", "-to", netip.AddrPortFrom(a1.Addr, 51820).String(), "-pub", pub, "-for", "8s")
		}()
		// Every call must come back within erpc's 5 s timeout. The flooder
		// shares this machine's CPUs with the victim, so latency is
		// reported, not judged.
		var took []time.Duration
		for floodCtx.Err() == nil {
			began := time.Now()
			if got := eval(t, a2.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [], 5000)", cluster.Atom(a1.Node.Name))); got != cluster.Atom(a1.Node.Name) {
				t.Fatalf("a2 -> a1 during the flood: %s", got)
			}
			took = append(took, time.Since(began))
		}
		wg.Wait()
		slices.Sort(took)
		if len(took) < 3 {
			t.Fatalf("only %d erpc calls a2 -> a1 completed during the flood", len(took))
		}
		t.Logf("handshake flood: %v; a2 -> a1 during it: %d erpc calls, median %v, slowest %v",
			flood, len(took), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
		if flood["cookies"] == 0 {
			t.Fatalf("no cookie reply to %d initiations: WireGuard's under-load mode never engaged", flood["sent"])
		}
		if a1.Daemon.Exited() {
			t.Fatal("a1's overlayd died")
		}
	})

	t.Run("junk and truncated datagrams at the WireGuard port change nothing", func(t *testing.T) {
		got := attack(ex, time.Minute, "junk", "-to", netip.AddrPortFrom(a1.Addr, 51820).String(), "-n", "20000")
		if got["sent"] < 20000 {
			t.Fatalf("junk: %v", got)
		}
		if a1.Daemon.Exited() {
			t.Fatalf("a1's overlayd died:\n%s", a1.Daemon.Tail(20))
		}
		freshPing(t, a2, a1)
		freshPing(t, a1, a3)
		if got := eval(t, a1.Node, fmt.Sprintf("B = rand:bytes(1 bsl 20), erpc:call(%s, erlang, md5, [B]) =:= erlang:md5(B)", cluster.Atom(a2.Node.Name))); got != "true" {
			t.Fatalf("1 MiB a1 -> a2 after the junk: %s", got)
		}
	})

	t.Run("control socket and key file permissions", func(t *testing.T) {
		st, err := os.Stat(a1.Control)
		must(t, err)
		if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
			t.Fatalf("control socket mode %v, want a 0600 socket", st.Mode())
		}
		// Another user may not talk to it (nobody: uid 65534).
		out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", o.Ctl, "status", "--control", a1.Control).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "permission denied") {
			t.Fatalf("overlayctl status as nobody: %v: %s", err, out)
		}
		// A key others can read: overlayd refuses to start, binds nothing.
		loose := filepath.Join(c.Dir(), "loose.key")
		must(t, os.WriteFile(loose, []byte(mustReadFile(t, a1.KeyFile)), 0o644))
		must(t, os.Chmod(loose, 0o644))
		sock := filepath.Join(c.Dir(), "loose.sock")
		out, err = ex.Exec(ctxFor(t, 30*time.Second), o.Overlayd, "--peers", a1.PeerFile, "--self", a1.Peer,
			"--private-key", loose, "--control", sock, "--listen-port", "51999")
		if err == nil || !regexp.MustCompile(`mode 0644 lets others read it`).MatchString(string(out)) {
			t.Fatalf("overlayd with a 0644 key: %v: %s", err, out)
		}
		if _, err := os.Stat(sock); err == nil {
			t.Fatal("overlayd with a bad key created its control socket")
		}
	})
	t.Logf("adversary suite took %v", time.Since(start).Round(time.Millisecond))
}
