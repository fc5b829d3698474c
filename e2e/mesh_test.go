package e2e

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
	"github.com/nodewire/nodewire/overlay/control"
)

// TestPartialMesh runs, with real nodes, the interconnect `overlayctl check`
// warns about: networks a, b and c, a policy that lets a and b reach each
// other, and b and c, but not a and c. One node per host; the node on a
// pings the node on b, then the node on b pings the node on c. Each subtest
// starts fresh nodes with other flags and records what OTP's global does.
//
// What OTP 25 does with default flags: once global on b has synced the second
// connection (its locker waits some 200 ms after the nodeup), it tells a about
// c and c about a, and global on each tries once to connect. Both are refused
// (the overlay denies a -> c and c -> a at the source), and each reports the
// loss to b ({lost_connection, ...}). b acts on each report that reaches it
// while the reporter is still connected: it asks the other side to disconnect
// ({remove_connection, ...}). So b always loses at least one of its two links;
// which one is a race between the two failed attempts: the side whose report
// reaches b first keeps its link; when both reach b, all three end isolated.
// A node's first outgoing connection loads code (tens of ms), so the side that
// has not dialled before usually loses: here c, which was only dialled. When
// the cut node dials b again, as an application would, it all happens again,
// and now either side may lose.
// With -kernel connect_all false on all nodes, or the bridge b started
// -hidden, global learns of no node at all, and nothing is torn down.
func TestPartialMesh(t *testing.T) {
	cluster.Require(t)
	c := cluster.New(t, "mesh")
	o := cluster.NewOverlay(c, t, "10.77.0.0/16")
	for i, nw := range []string{"a", "b", "c"} {
		_, err := o.Run("add-network", "--file", o.File, "--name", nw, "--prefix", fmt.Sprintf("10.77.%d.0/24", i+1))
		must(t, err)
	}
	var hosts []*cluster.OverlayHost
	for _, nw := range []string{"a", "b", "c"} {
		h, err := o.AddPeer(nw, nw+"-1", nw)
		must(t, err)
		hosts = append(hosts, h)
	}
	for _, pair := range []string{"a,b", "b,c"} {
		_, err := o.Run("allow", "--file", o.File, "--between", pair, "--ports", "erlang")
		must(t, err)
	}
	out, err := o.Run("check", "--file", o.File)
	must(t, err)
	if !strings.Contains(out, "warning: the interconnect is not transitive (1 gap):\n  a <-> b and b <-> c, but not a <-> c\n") {
		t.Fatalf("check does not warn about the gap:\n%s", out)
	}
	for _, h := range hosts {
		must(t, o.StartDaemon(h))
	}
	// epmd and the environment of each host; the nodes of the cases are
	// started fresh below, so each case begins with no connection at all.
	for _, h := range hosts {
		must(t, o.StartErlang(h))
		must(t, h.Node.Stop())
	}

	for _, tc := range []struct {
		name  string
		alive string               // node names are <alive>@<face>
		args  func(i int) []string // extra erl flags of host i (0 a, 1 b, 2 c)
		// torn: global tears a link down (default flags); otherwise all
		// allowed links stay up.
		torn bool
	}{
		{name: "default flags", alive: "def", args: func(int) []string { return nil }, torn: true},
		{name: "connect_all false on all nodes", alive: "nca", args: func(int) []string { return []string{"-kernel", "connect_all", "false"} }},
		{name: "b hidden", alive: "hid", args: func(i int) []string {
			if i == 1 {
				return []string{"-hidden"}
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := startMesh(t, hosts, tc.alive, tc.args)
			m.ping(0, 1)
			m.ping(1, 2)
			if !tc.torn {
				m.settleIdle()
				m.report()
				m.check(false)
				return
			}
			m.settleTeardown()
			m.report()
			cut := m.check(true)
			// An application on a cut node dials b again, as it would:
			// global syncs the new link and it all happens again.
			m.mark()
			for _, x := range cut {
				m.ping(x, hostB)
			}
			m.settleTeardown()
			m.report()
			m.check(true)
		})
	}
}

// mesh is one case of TestPartialMesh: a node on each of hosts a, b and c.
type mesh struct {
	t     *testing.T
	hosts []*cluster.OverlayHost
	nodes []*cluster.Node
	// Per round (see mark):
	began     time.Time
	denied    []uint64 // per host, refusals toward the other end (a -> c, -, c -> a) before it
	logAt     []int    // per host, where the daemon's log stood
	failedAt  []int    // per host, global's failed attempts on the other end before it
	nodeLogAt []int    // per host, where the node's log stood
	eventsAt  []int    // per host, events the node had recorded
}

const (
	hostA, hostB, hostC = 0, 1, 2
)

// meshMonitor records every nodeup and nodedown (hidden connections too)
// with the wall clock in ms and the nodedown's reason; it runs before the
// node makes or accepts any connection. It also answers barriers: a reply
// once the local global has handled what arrived before the request.
const meshMonitor = `Parent = self(),
	Pid = spawn(fun() ->
		ok = net_kernel:monitor_nodes(true, [{node_type, all}, nodedown_reason]),
		Parent ! {meshmon, ready},
		(fun L(Acc) -> receive
			{get, From} -> From ! {meshmon, lists:reverse(Acc)}, L(Acc);
			{barrier, From} ->
				_ = sys:get_state(global_name_server),
				_ = erlang:send(From, {meshmon, node(), barrier}, [noconnect]),
				L(Acc);
			{nodeup, N, I} -> L([{erlang:system_time(millisecond), nodeup, N, proplists:get_value(node_type, I)} | Acc]);
			{nodedown, N, I} -> L([{erlang:system_time(millisecond), nodedown, N, proplists:get_value(nodedown_reason, I)} | Acc])
		end end)([])
	end),
	register(meshmon, Pid),
	receive {meshmon, ready} -> ok end`

func startMesh(t *testing.T, hosts []*cluster.OverlayHost, alive string, args func(int) []string) *mesh {
	m := &mesh{t: t, hosts: hosts, nodes: make([]*cluster.Node, len(hosts))}
	// Boot the three at once: erl takes a second or two to start.
	var wg sync.WaitGroup
	errs := make([]error, len(hosts))
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.nodes[i], errs[i] = h.StartNode(cluster.NodeOptions{Name: alive + "@" + h.Face, Env: h.ErlEnv,
				Args: append(slices.Clone(h.ErlArgs), args(i)...)})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		n := m.nodes[i]
		t.Cleanup(func() { _ = n.Stop() })
	}
	for _, n := range m.nodes {
		eval(t, n, meshMonitor)
	}
	m.mark()
	return m
}

// mark starts a round: events, refusals and global's failed attempts are
// counted from here.
func (m *mesh) mark() {
	m.denied, m.logAt, m.failedAt, m.nodeLogAt, m.eventsAt = nil, nil, nil, nil, nil
	for i, h := range m.hosts {
		m.denied = append(m.denied, m.deniedToward(i))
		m.logAt = append(m.logAt, len(h.Daemon.Log()))
		m.failedAt = append(m.failedAt, m.failedAttempts(i))
		m.nodeLogAt = append(m.nodeLogAt, len(m.nodes[i].Process.Log()))
		m.eventsAt = append(m.eventsAt, len(m.nodeEvents(i)))
	}
	m.began = time.Now()
}

// failedAttempts counts the times global on node i logged that it failed to
// connect to the node across the gap.
func (m *mesh) failedAttempts(i int) int {
	if i == hostB {
		return 0
	}
	return strings.Count(m.nodes[i].Process.Log(), fmt.Sprintf("'global' at %s failed to connect to %s", m.atom(i), m.atom(other(i))))
}

// other is the host across the gap: c for a, a for c.
func other(i int) int { return hostC - i }

// deniedToward is how many connections host i's daemon refused toward the
// host across the gap (0 for b).
func (m *mesh) deniedToward(i int) uint64 {
	if i == hostB {
		return 0
	}
	st, err := control.Client{Path: m.hosts[i].Control}.Status(ctxFor(m.t, 10*time.Second))
	must(m.t, err)
	for _, p := range st.Peers {
		if p.Name == m.hosts[other(i)].Peer {
			return p.DeniedOut
		}
	}
	m.t.Fatalf("%s's status lists no peer %s", m.hosts[i].Peer, m.hosts[other(i)].Peer)
	return 0
}

func (m *mesh) atom(i int) string { return cluster.Atom(m.nodes[i].Name) }

func (m *mesh) ping(from, to int) {
	m.t.Helper()
	if got := eval(m.t, m.nodes[from], fmt.Sprintf("net_adm:ping(%s)", m.atom(to))); got != "pong" {
		m.t.Fatalf("%s -> %s: %s, want pong (the policy allows it)", m.nodes[from].Name, m.nodes[to].Name, got)
	}
}

// links reads nodes(connected) on every node: links[i][j] is whether node i
// has a connection to node j (hidden ones included).
func (m *mesh) links(ctx context.Context) ([3][3]bool, error) {
	var l [3][3]bool
	for i, n := range m.nodes {
		out, err := n.Eval(ctx, "nodes(connected)")
		if err != nil {
			return l, err
		}
		for j := range m.nodes {
			l[i][j] = j != i && strings.Contains(out, m.atom(j))
		}
	}
	return l, nil
}

// settled: both ends agree on every link, and the links do not overlap
// (b is not connected to both a and c).
func settled(l [3][3]bool) bool {
	for i := range 3 {
		for j := range 3 {
			if l[i][j] != l[j][i] {
				return false
			}
		}
	}
	return !(l[hostA][hostB] && l[hostB][hostC])
}

// settleTeardown waits until global has done all it will do after the two
// connections: each of a and c has tried the other and handled the failure
// (reporting it to b if still connected), b has acted on every report, and
// the links settled. It reads global's own state; no sleeps.
func (m *mesh) settleTeardown() {
	t := m.t
	ctx := ctxFor(t, 60*time.Second)
	// done(x): x's global logged a new failed attempt on y and has handled it
	// (y is gone from #state.known, OTP 25's second field: global adds y when
	// it hears of it, before it tries y), whether or not x still has b.
	//
	// Being cut off from b is not enough: b's word that cuts x arrives after
	// the sync that made x try y (x spawns that attempt, sync_other, when it
	// handles b's {resolved, ...}, which b sent on the same connection
	// before any {remove_connection, ...}), but the attempt itself can end
	// after the cut. It usually does for the node that was only dialled: its
	// first outgoing connection loads code. Waiting only for the cut let
	// check read the overlay's refusal counter before that attempt reached
	// the overlay (on a loaded machine c's refusal came 27 and 117 ms after
	// a's, after the check), and the attempt's log line leaked into the
	// next round.
	done := func(x int) (bool, error) {
		y := other(x)
		out, err := m.nodes[x].Eval(ctx, fmt.Sprintf(`S = sys:get_state(global_name_server), state = element(1, S),
			K = element(3, S), true = is_map(K), maps:is_key(%s, K)`, m.atom(y)))
		if err != nil {
			return false, err
		}
		return out == "false" && m.failedAttempts(x) > m.failedAt[x], nil
	}
	err := cluster.Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		for _, x := range []int{hostA, hostC} {
			if ok, err := done(x); !ok || err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("a and c never both tried each other (global's connect after the sync): %v", err)
	}
	// A report x sent to b travels on the x -> b connection ahead of this
	// barrier, so once b answers, b's global has handled it. Never with a
	// call that would connect: a new connection would start global again.
	for _, x := range []int{hostA, hostC} {
		got := eval(t, m.nodes[x], fmt.Sprintf(`B = %s, ok = net_kernel:monitor_nodes(true),
			case lists:member(B, nodes(connected)) andalso erlang:send({meshmon, B}, {barrier, self()}, [noconnect]) of
				ok -> receive {meshmon, B, barrier} -> passed; {nodedown, B} -> cut end;
				_ -> cut
			end`, m.atom(hostB)))
		if got != "passed" && got != "cut" {
			t.Fatalf("barrier %s -> b: %s", m.hosts[x].Peer, got)
		}
	}
	var last [3][3]bool
	err = cluster.Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		var err error
		last, err = m.links(ctx)
		return err == nil && settled(last), err
	})
	if err != nil {
		t.Fatalf("links never settled without overlap (last %v): %v", last, err)
	}
}

// settleIdle waits until global on every node has handled the nodeups and
// checks that it learned of no node: it has nothing to sync, so nothing to
// try and nothing to tear down, now or later.
func (m *mesh) settleIdle() {
	for i, n := range m.nodes {
		got := eval(m.t, n, `S = sys:get_state(global_name_server), state = element(1, S),
			[N || N <- maps:keys(element(3, S)), is_atom(N)]`)
		if got != "[]" {
			m.t.Errorf("global on %s knows of %s: it will sync and may tear links down", m.hosts[i].Peer, got)
		}
	}
}

var meshEventRE = regexp.MustCompile(`\{(\d+),(nodeup|nodedown),('[^']*'|[a-z][\w@.]*),(\w+)\}`)

type meshEvent struct {
	at     time.Duration // since the first ping
	host   int
	kind   string // nodeup or nodedown
	peer   int
	reason string // node type of a nodeup, reason of a nodedown
}

func (e meshEvent) String() string {
	return fmt.Sprintf("%+5dms %s: %s %s (%s)", e.at.Milliseconds(), "abc"[e.host:e.host+1], e.kind, "abc"[e.peer:e.peer+1], e.reason)
}

// nodeEvents is every nodeup and nodedown node i has seen.
func (m *mesh) nodeEvents(i int) []meshEvent {
	var evs []meshEvent
	out := eval(m.t, m.nodes[i], "meshmon ! {get, self()}, receive {meshmon, L} -> L after 5000 -> timeout end")
	for _, f := range meshEventRE.FindAllStringSubmatch(out, -1) {
		ms, _ := strconv.ParseInt(f[1], 10, 64)
		peer := slices.IndexFunc(m.nodes, func(n *cluster.Node) bool { return cluster.Atom(n.Name) == f[3] })
		if peer < 0 {
			m.t.Fatalf("%s saw %s of unknown node %s", m.hosts[i].Peer, f[2], f[3])
		}
		evs = append(evs, meshEvent{at: time.UnixMilli(ms).Sub(m.began), host: i, kind: f[2], peer: peer, reason: f[4]})
	}
	return evs
}

// events collects the round's nodeups and nodedowns of all nodes, in time order.
func (m *mesh) events() []meshEvent {
	var evs []meshEvent
	for i := range m.nodes {
		evs = append(evs, m.nodeEvents(i)[m.eventsAt[i]:]...)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	return evs
}

// globalLines are the warnings global logged on node i in the round.
func (m *mesh) globalLines(i int) []string {
	var out []string
	for _, l := range strings.Split(m.nodes[i].Process.Log()[m.nodeLogAt[i]:], "\n") {
		if strings.HasPrefix(l, "'global' at ") {
			out = append(out, l)
		}
	}
	return out
}

// refusals are the daemon's refusal lines of host i since the case began.
func (m *mesh) refusals(i int) []string {
	var out []string
	for _, l := range strings.Split(m.hosts[i].Daemon.Log()[m.logAt[i]:], "\n") {
		if strings.Contains(l, "netstack: refused") {
			out = append(out, l)
		}
	}
	return out
}

func (m *mesh) report() {
	var b strings.Builder
	for _, e := range m.events() {
		fmt.Fprintf(&b, "  %v\n", e)
	}
	for i := range m.nodes {
		for _, l := range m.globalLines(i) {
			fmt.Fprintf(&b, "  %s log: %s\n", "abc"[i:i+1], l)
		}
		for _, l := range m.refusals(i) {
			fmt.Fprintf(&b, "  %s overlayd: %s\n", m.hosts[i].Peer, l)
		}
	}
	m.t.Logf("events (a %s, b %s, c %s):\n%s", m.nodes[0].Name, m.nodes[1].Name, m.nodes[2].Name, b.String())
}

// check asserts what the round did and returns the hosts b cut off.
func (m *mesh) check(torn bool) []int {
	t := m.t
	l, err := m.links(ctxFor(t, 30*time.Second))
	must(t, err)
	evs := m.events()
	for _, e := range evs {
		if (e.host == hostA && e.peer == hostC) || (e.host == hostC && e.peer == hostA) {
			t.Errorf("a and c connected, which the policy forbids: %v", e)
		}
	}
	tried := []bool{m.deniedToward(hostA) > m.denied[hostA], false, m.deniedToward(hostC) > m.denied[hostC]}
	downs := map[[2]int]string{} // {host, peer} -> reason
	for _, e := range evs {
		if e.kind == "nodedown" {
			downs[[2]int{e.host, e.peer}] = e.reason
		}
	}

	if !torn {
		if !l[hostA][hostB] || !l[hostB][hostC] || l[hostA][hostC] {
			t.Errorf("links a-b %v, b-c %v, a-c %v: want a-b and b-c up, a-c not", l[hostA][hostB], l[hostB][hostC], l[hostA][hostC])
		}
		if len(downs) > 0 {
			t.Errorf("nodedowns: %v", downs)
		}
		for _, x := range []int{hostA, hostC} {
			if tried[x] {
				t.Errorf("%s tried %s (overlayd refused it): global meshes after all", m.hosts[x].Peer, m.hosts[other(x)].Peer)
			}
			if g := m.globalLines(x); len(g) > 0 {
				t.Errorf("global on %s: %q", m.hosts[x].Peer, g)
			}
		}
		// The partial mesh works: calls across both allowed links.
		for _, p := range [][2]int{{hostA, hostB}, {hostB, hostC}, {hostC, hostB}} {
			if got := eval(t, m.nodes[p[0]], fmt.Sprintf("erpc:call(%s, erlang, node, [])", m.atom(p[1]))); got != m.atom(p[1]) {
				t.Errorf("%s -> %s: %s", m.nodes[p[0]].Name, m.nodes[p[1]].Name, got)
			}
		}
		return nil
	}

	// Default flags: a and c each tried the other once (a cut node too:
	// settleTeardown waited for both attempts), both were refused at the
	// source, and b cut at least one of its links on global's word.
	for _, x := range []int{hostA, hostC} {
		y := other(x)
		if !tried[x] {
			t.Errorf("overlayd on %s refused nothing toward %s: global did not try the missing link", m.hosts[x].Peer, m.hosts[y].Peer)
		}
		if m.failedAttempts(x) <= m.failedAt[x] {
			t.Errorf("global on %s did not log a failed attempt on %s", m.hosts[x].Peer, m.hosts[y].Peer)
		}
	}
	var cut []int
	var names []string
	for _, x := range []int{hostA, hostC} {
		if l[hostB][x] {
			continue
		}
		cut, names = append(cut, x), append(names, m.hosts[x].Peer)
		// x disconnected on b's request; b saw the connection close.
		if r := downs[[2]int{x, hostB}]; r != "disconnect" {
			t.Errorf("%s's nodedown of b: reason %q, want disconnect (asked to by b's global)", m.hosts[x].Peer, r)
		}
		if r := downs[[2]int{hostB, x}]; r != "connection_closed" {
			t.Errorf("b's nodedown of %s: reason %q, want connection_closed", m.hosts[x].Peer, r)
		}
		want := fmt.Sprintf("'global' at node %s requested disconnect from node %s in order to prevent overlapping partitions", m.atom(hostB), m.atom(x))
		if !slices.Contains(m.globalLines(hostB), want) {
			t.Errorf("b's log lacks %q", want)
		}
	}
	if len(cut) == 0 {
		t.Fatalf("b kept both links: global tore nothing down")
	}
	kept := "none"
	for _, x := range []int{hostA, hostC} {
		if l[hostB][x] {
			kept = m.hosts[x].Peer
		}
	}
	t.Logf("outcome: b (the bridge) cut %s, kept %s", strings.Join(names, " and "), kept)
	return cut
}
