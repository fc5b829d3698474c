// Package e2e holds nodewire's multi-host tests: network namespaces on a
// bridge, real overlayd daemons, real epmd and erl nodes.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func eval(t testing.TB, n *cluster.Node, expr string) string {
	t.Helper()
	out, err := n.Eval(ctxFor(t, 60*time.Second), expr)
	if err != nil {
		t.Fatalf("%s: %s: %v", n.Name, expr, err)
	}
	return out
}

// TestOverlay is the userspace mode end to end: networks payments (pay-1,
// pay-2) and monitoring (mon-1), one rule monitoring -> payments on the
// `erlang` ports. Subtests share the cluster and run in order.
func TestOverlay(t *testing.T) {
	cluster.Require(t)
	start := time.Now()
	c := cluster.New(t, "ov")
	o := cluster.NewOverlay(c, t, "10.77.0.0/16")
	for _, args := range [][]string{
		{"add-network", "--file", o.File, "--name", "payments", "--prefix", "10.77.1.0/24"},
		{"add-network", "--file", o.File, "--name", "monitoring", "--prefix", "10.77.2.0/24"},
	} {
		_, err := o.Run(args...)
		must(t, err)
	}
	pay1, err := o.AddPeer("pay1", "pay-1", "payments")
	must(t, err)
	pay2, err := o.AddPeer("pay2", "pay-2", "payments")
	must(t, err)
	mon1, err := o.AddPeer("mon1", "mon-1", "monitoring")
	must(t, err)
	_, err = o.Run("allow", "--file", o.File, "--from", "monitoring", "--to", "payments", "--ports", "erlang")
	must(t, err)
	_, err = o.Run("check", "--file", o.File)
	must(t, err)

	for _, h := range []*cluster.OverlayHost{pay1, pay2, mon1} {
		must(t, o.StartDaemon(h))
	}
	// The monitoring node is hidden: it bridges networks that are not fully
	// interconnected, so it must not make `global` mesh them (see README).
	for _, h := range []*cluster.OverlayHost{pay1, pay2} {
		must(t, o.StartErlang(h))
	}
	must(t, o.StartErlang(mon1, "-hidden"))
	t.Logf("three hosts up in %v", time.Since(start).Round(time.Millisecond))

	atom := func(h *cluster.OverlayHost) string { return cluster.Atom(h.Node.Name) }

	t.Run("erpc within a network, both ways", func(t *testing.T) {
		if got := eval(t, pay1.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [])", atom(pay2))); got != atom(pay2) {
			t.Fatalf("pay-1 -> pay-2 answered %s", got)
		}
		if got := eval(t, pay2.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [])", atom(pay1))); got != atom(pay1) {
			t.Fatalf("pay-2 -> pay-1 answered %s", got)
		}
	})

	t.Run("global registration within a network", func(t *testing.T) {
		eval(t, pay1.Node, "Pid = spawn(fun() -> receive stop -> ok end end), yes = global:register_name(nwtest, Pid), ok")
		ctx := ctxFor(t, 30*time.Second)
		var last string
		err := cluster.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
			out, err := pay2.Node.Eval(ctx, "node(global:whereis_name(nwtest))")
			last = out
			return err == nil && out == atom(pay1), nil
		})
		if err != nil {
			t.Fatalf("pay-2 never saw the global name on pay-1 (last %s): %v", last, err)
		}
	})

	t.Run("8 MiB binary crosses intact", func(t *testing.T) {
		got := eval(t, pay1.Node, fmt.Sprintf("B = rand:bytes(8 bsl 20), erpc:call(%s, erlang, md5, [B]) =:= erlang:md5(B)", atom(pay2)))
		if got != "true" {
			t.Fatalf("md5 mismatch across the overlay: %s", got)
		}
		got = eval(t, pay2.Node, fmt.Sprintf("B = rand:bytes(8 bsl 20), byte_size(erpc:call(%s, erlang, binary_to_term, [term_to_binary(B)])) =:= 8 bsl 20", atom(pay1)))
		if got != "true" {
			t.Fatalf("8 MiB echo came back wrong: %s", got)
		}
	})

	t.Run("monitoring may call payments", func(t *testing.T) {
		if got := eval(t, mon1.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [])", atom(pay1))); got != atom(pay1) {
			t.Fatalf("mon-1 -> pay-1 answered %s", got)
		}
	})

	t.Run("payments may not call monitoring", func(t *testing.T) {
		// The earlier subtest connected mon-1 to pay-1; drop that
		// connection so pay-1 must dial.
		eval(t, pay1.Node, fmt.Sprintf("erlang:disconnect_node(%s)", atom(mon1)))
		began := time.Now()
		got := eval(t, pay1.Node, fmt.Sprintf("net_adm:ping(%s)", atom(mon1)))
		took := time.Since(began)
		if got != "pang" {
			t.Fatalf("pay-1 -> mon-1: %s, want pang", got)
		}
		// Refused at the source at once, not timed out (net_setuptime is 7 s).
		if took > 5*time.Second {
			t.Errorf("refusal took %v: it should be immediate", took)
		}
		ctx := ctxFor(t, 10*time.Second)
		err := cluster.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
			log := pay1.Daemon.Log()
			return strings.Contains(log, "deny default") && strings.Contains(log, "mon-1"), nil
		})
		if err != nil {
			t.Fatalf("pay-1's log does not name the deciding rule:\n%s", pay1.Daemon.Tail(20))
		}
	})

	t.Run("EPMD admin requests through the overlay change nothing", func(t *testing.T) {
		before := eval(t, pay1.Node, "erl_epmd:names()")
		face := strings.ReplaceAll(pay1.Face, ".", ",")
		// From pay-2 (same network, every port allowed): ALIVE2 for a
		// fake name, STOP and KILL, each on its own connection to pay-1's
		// face, i.e. through both daemons into pay-1's epmd.
		reqs := []string{
			`<<120, 9999:16, 77, 0, 6:16, 5:16, 4:16, "evil", 0:16>>`,
			`<<115, "app">>`,
			`<<107>>`,
		}
		for _, body := range reqs {
			expr := fmt.Sprintf(`Body = %s, {ok, S} = gen_tcp:connect({%s}, 4369, [binary, {active, false}], 5000), ok = gen_tcp:send(S, [<<(byte_size(Body)):16>>, Body]), R = gen_tcp:recv(S, 0, 5000), gen_tcp:close(S), R`, body, face)
			got := eval(t, pay2.Node, expr)
			if strings.HasPrefix(got, "{ok,") {
				t.Errorf("request %s got an answer %s: it reached epmd", body, got)
			}
		}
		after := eval(t, pay1.Node, "erl_epmd:names()")
		if after != before || strings.Contains(after, "evil") {
			t.Fatalf("pay-1's epmd changed: before %s, after %s", before, after)
		}
		if got := eval(t, pay2.Node, fmt.Sprintf("net_adm:ping(%s)", atom(pay1))); got != "pong" {
			t.Fatalf("pay-1 unreachable after the attempts: %s", got)
		}
		if !strings.Contains(pay1.Daemon.Log(), "ALIVE2") {
			t.Errorf("pay-1's log does not record the refused ALIVE2:\n%s", pay1.Daemon.Tail(20))
		}
	})

	t.Run("wg show lists the peers", func(t *testing.T) {
		out, err := pay1.Exec(ctxFor(t, 10*time.Second), "wg", "show", pay1.Interface, "peers")
		if err != nil {
			t.Fatalf("wg show: %v: %s", err, out)
		}
		for _, h := range []*cluster.OverlayHost{pay2, mon1} {
			pub := pubkey(t, o, h)
			if !strings.Contains(string(out), pub) {
				t.Errorf("wg show %s lacks %s (%s):\n%s", pay1.Interface, h.Peer, pub, out)
			}
		}
	})

	t.Run("a fourth host joins with add-peer --reload; a live stream sees no nodedown", func(t *testing.T) {
		downs1, err := pay1.Node.NodeDowns(ctxFor(t, 10*time.Second))
		must(t, err)
		downs2, err := pay2.Node.NodeDowns(ctxFor(t, 10*time.Second))
		must(t, err)
		// A stream of messages pay-1 -> pay-2, acknowledged one by one.
		eval(t, pay2.Node, "register(sink, spawn(fun Loop() -> receive {From, N} -> From ! {ack, N}, Loop() end end)), ok")
		eval(t, pay1.Node, fmt.Sprintf(`Counter = counters:new(1, []), persistent_term:put(nw_stream, Counter),
			register(streamer, spawn(fun Loop() -> N = counters:get(Counter, 1), {sink, %s} ! {self(), N},
				receive {ack, N} -> counters:add(Counter, 1, 1), Loop() after 10000 -> exit(stalled) end end)), ok`, atom(pay2)))
		streamed := func() int {
			n, err := strconv.Atoi(eval(t, pay1.Node, "counters:get(persistent_term:get(nw_stream), 1)"))
			must(t, err)
			return n
		}
		waitProgress := func(from int) int {
			ctx := ctxFor(t, 30*time.Second)
			var n int
			must(t, cluster.Poll(ctx, 20*time.Millisecond, func() (bool, error) { n = streamed(); return n > from+100, nil }))
			return n
		}
		n0 := waitProgress(0)

		pay4, err := o.AddPeer("pay4", "pay-4", "payments") // makes the host; adds it to the master file
		must(t, err)
		pub4 := pubkey(t, o, pay4)
		must(t, o.CopyFile(pay4))
		for _, h := range []*cluster.OverlayHost{pay1, pay2, mon1} {
			out, err := o.Run("add-peer", "--file", h.PeerFile, "--name", "pay-4", "--network", "payments",
				"--public-key", pub4, "--endpoint", pay4.Addr.String()+":51820", "--reload", "--control", h.Control)
			must(t, err)
			if !strings.Contains(out, "10.77.1.3") {
				t.Errorf("add-peer on %s: %s", h.Peer, out)
			}
		}
		must(t, o.StartDaemon(pay4))
		must(t, o.StartErlang(pay4))
		for _, h := range []*cluster.OverlayHost{pay1, pay2} {
			if ok, err := pay4.Node.Ping(ctxFor(t, 30*time.Second), h.Node.Name); err != nil || !ok {
				t.Fatalf("pay-4 -> %s: pong %v, err %v", h.Peer, ok, err)
			}
		}
		n1 := waitProgress(n0)
		eval(t, pay1.Node, "exit(whereis(streamer), kill)")
		after1, err := pay1.Node.NodeDowns(ctxFor(t, 10*time.Second))
		must(t, err)
		after2, err := pay2.Node.NodeDowns(ctxFor(t, 10*time.Second))
		must(t, err)
		if after1 != downs1 || after2 != downs2 {
			t.Fatalf("nodedowns during the join: pay-1 %d -> %d, pay-2 %d -> %d", downs1, after1, downs2, after2)
		}
		t.Logf("stream carried %d acknowledged messages across the reloads (%d before the join)", n1, n0)
	})

	t.Run("a policy change closes connections it now denies", func(t *testing.T) {
		if got := eval(t, mon1.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [])", atom(pay1))); got != atom(pay1) {
			t.Fatalf("mon-1 -> pay-1 answered %s", got)
		}
		connected := fmt.Sprintf("lists:member(%s, nodes(connected))", atom(pay1))
		if got := eval(t, mon1.Node, connected); got != "true" {
			t.Fatalf("mon-1 not connected to pay-1: %s", got)
		}
		const rule = "  - from: monitoring\n    to: payments\n    ports: [erlang]\n"
		for _, h := range []*cluster.OverlayHost{pay1, pay2, mon1} {
			text := mustReadFile(t, h.PeerFile)
			if !strings.Contains(text, rule) {
				t.Fatalf("%s: the rule written by overlayctl allow is not where expected:\n%s", h.PeerFile, text)
			}
			must(t, os.WriteFile(h.PeerFile, []byte(strings.Replace(text, rule, "", 1)), 0o644))
			_, err := o.Run("reload", "--control", h.Control)
			must(t, err)
		}
		ctx := ctxFor(t, 30*time.Second)
		err := cluster.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
			out, err := mon1.Node.Eval(ctx, connected)
			return err == nil && out == "false", nil
		})
		if err != nil {
			t.Fatalf("mon-1 is still connected to pay-1 after the rule was removed: %v", err)
		}
		if got := eval(t, mon1.Node, fmt.Sprintf("net_adm:ping(%s)", atom(pay1))); got != "pang" {
			t.Fatalf("mon-1 -> pay-1 after the rule was removed: %s", got)
		}
		if got := eval(t, pay1.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [])", atom(pay2))); got != atom(pay2) {
			t.Fatalf("pay-1 -> pay-2 after the policy change: %s", got)
		}
	})

	t.Run("a bad peer file is refused and the daemon keeps running", func(t *testing.T) {
		good, err := os.ReadFile(pay1.PeerFile)
		must(t, err)
		bad := strings.Replace(string(good), "address: 10.77.1.2", "address: 10.77.2.9", 1)
		must(t, os.WriteFile(pay1.PeerFile, []byte(bad), 0o644))
		defer os.WriteFile(pay1.PeerFile, good, 0o644)
		_, err = o.Run("reload", "--control", pay1.Control)
		if err == nil || !strings.Contains(err.Error(), "outside network payments") {
			t.Fatalf("reload of a bad file: %v", err)
		}
		if got := eval(t, pay1.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [])", atom(pay2))); got != atom(pay2) {
			t.Fatalf("pay-1 -> pay-2 after a rejected reload: %s", got)
		}
	})

	t.Run("a node restarted on another port is reached at the first try", func(t *testing.T) {
		// pay-1's overlayd answers its node's next lookup of pay-2's node
		// from its cache (the old port); the check that runs meanwhile
		// finds the new port and the connection is carried there.
		distPort := func(n *cluster.Node) string {
			return eval(t, n, `{ok, [{_, P}]} = net_adm:names(), P`)
		}
		if got := eval(t, pay1.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [])", atom(pay2))); got != atom(pay2) {
			t.Fatalf("pay-1 -> pay-2 answered %s", got)
		}
		old := distPort(pay2.Node)
		must(t, pay2.Node.Stop())
		ctx := ctxFor(t, 30*time.Second)
		must(t, cluster.Poll(ctx, 20*time.Millisecond, func() (bool, error) {
			out, err := pay1.Node.Eval(ctx, fmt.Sprintf("lists:member(%s, nodes(connected))", atom(pay2)))
			return out == "false", err
		}))
		n, err := pay2.StartNode(cluster.NodeOptions{Name: pay2.Node.Name, Env: pay2.ErlEnv, Args: pay2.ErlArgs})
		must(t, err)
		pay2.Node = n
		t.Logf("pay-2's node listened on %s, now on %s", old, distPort(n))
		if got := eval(t, pay1.Node, fmt.Sprintf("net_adm:ping(%s)", atom(pay2))); got != "pong" {
			t.Fatalf("first ping of the restarted node: %s", got)
		}
	})

	t.Run("status shows peers, handshakes and denials", func(t *testing.T) {
		out, err := o.Run("status", "--control", pay1.Control)
		must(t, err)
		t.Logf("overlayctl status on pay-1:\n%s", out)
		for _, want := range []string{"pay-2", "mon-1", "pay-4", "LAST RELOAD REJECTED"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q", want)
			}
		}
	})
	t.Logf("e2e overlay suite took %v", time.Since(start).Round(time.Millisecond))
}

func pubkey(t *testing.T, o *cluster.Overlay, h *cluster.OverlayHost) string {
	t.Helper()
	key, err := os.ReadFile(h.KeyFile)
	must(t, err)
	cmd := exec.Command(o.Ctl, "pubkey")
	cmd.Stdin = strings.NewReader(string(key))
	out, err := cmd.Output()
	must(t, err)
	return strings.TrimSpace(string(out))
}

func mustReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return string(b)
}
