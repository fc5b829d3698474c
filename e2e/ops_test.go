package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
	"github.com/nodewire/nodewire/overlay/control"
)

// TestOps is the operator's side end to end, with real epmd and erl:
// a rule that names nodes, what a refusal looks like (log, status,
// explain --control, metrics), a key rotated under a live stream, and an
// Elixir release's env.sh starting a node on its face.
//
// payments (pay-1, pay-2) and monitoring (mon-1); one rule monitoring ->
// payments on the erlang ports for node app only. pay-1 also runs a node
// called secret, which monitoring may not reach.
func TestOps(t *testing.T) {
	cluster.Require(t)
	c := cluster.New(t, "ops")
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
	master := readString(t, o.File)
	withNodes := strings.Replace(master, "    ports: [erlang]\n", "    ports: [erlang]\n    nodes: [app]\n", 1)
	if withNodes == master {
		t.Fatalf("no rule to add nodes to:\n%s", master)
	}
	must(t, os.WriteFile(o.File, []byte(withNodes), 0o644))
	out, err := o.Run("check", "--file", o.File)
	must(t, err)
	if strings.Contains(out, "warning") {
		t.Fatalf("check warns about a transitive interconnect:\n%s", out)
	}

	o.DaemonArgs = func(oh *cluster.OverlayHost) []string {
		if oh == pay1 {
			return []string{"--metrics", "127.0.0.1:9101"}
		}
		return nil
	}
	for _, h := range []*cluster.OverlayHost{pay1, pay2, mon1} {
		must(t, o.StartDaemon(h))
	}
	must(t, o.StartErlang(pay1))
	must(t, o.StartErlang(pay2))
	// mon-1 reaches only some nodes of payments: hidden, so global does not
	// try to mesh it with nodes the rule keeps from it.
	must(t, o.StartErlang(mon1, "-hidden"))
	secret, err := pay1.StartNode(cluster.NodeOptions{Name: "secret@" + pay1.Face, Env: pay1.ErlEnv, Args: pay1.ErlArgs})
	must(t, err)
	atom := func(h *cluster.OverlayHost) string { return cluster.Atom(h.Node.Name) }
	logHas := func(h *cluster.OverlayHost, parts ...string) string {
		t.Helper()
		var line string
		err := cluster.Poll(ctxFor(t, 10*time.Second), 50*time.Millisecond, func() (bool, error) {
			for _, l := range strings.Split(h.Daemon.Log(), "\n") {
				all := true
				for _, p := range parts {
					all = all && strings.Contains(l, p)
				}
				if all {
					line = l
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("%s's log has no line with %q:\n%s", h.Peer, parts, h.Daemon.Tail(20))
		}
		return line
	}

	t.Run("a rule's nodes: app yes, secret no, at the source", func(t *testing.T) {
		if got := eval(t, mon1.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [])", atom(pay1))); got != atom(pay1) {
			t.Fatalf("mon-1 -> app@pay-1 answered %s", got)
		}
		began := time.Now()
		if got := eval(t, mon1.Node, fmt.Sprintf("net_adm:ping(%s)", cluster.Atom(secret.Name))); got != "pang" {
			t.Fatalf("mon-1 -> secret@pay-1: %s, want pang", got)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("refusal took %v: it should be immediate", took)
		}
		logHas(mon1, "dir=out", "to=pay-1", `decision="deny node secret`)
	})

	t.Run("a rule's nodes at the destination: PORT_PLEASE2 and NAMES", func(t *testing.T) {
		// mon-1 runs a file without nodes: only pay-1 enforces them now.
		must(t, os.WriteFile(mon1.PeerFile, []byte(master), 0o644))
		_, err := o.Run("reload", "--control", mon1.Control)
		must(t, err)
		if got := eval(t, mon1.Node, fmt.Sprintf("net_adm:ping(%s)", cluster.Atom(secret.Name))); got != "pang" {
			t.Fatalf("mon-1 -> secret@pay-1: %s, want pang", got)
		}
		line := logHas(pay1, "dir=in", "from=mon-1", `decision="deny node secret`)
		t.Logf("pay-1 logs: %s", line)
		names := eval(t, mon1.Node, fmt.Sprintf("{ok, L} = net_adm:names(\"%s\"), [list_to_atom(N) || {N, _} <- L]", pay1.Face))
		if names != `[app]` {
			t.Fatalf("NAMES of pay-1 seen from mon-1: %s, want [\"app\"] only", names)
		}
		if got := eval(t, pay2.Node, fmt.Sprintf("{ok, L} = net_adm:names(\"%s\"), lists:sort([list_to_atom(N) || {N, _} <- L])", pay1.Face)); got != `[app,secret]` {
			t.Fatalf("NAMES of pay-1 seen from pay-2 (same network): %s", got)
		}
		must(t, os.WriteFile(mon1.PeerFile, []byte(withNodes), 0o644))
		_, err = o.Run("reload", "--control", mon1.Control)
		must(t, err)
	})

	t.Run("a denied connection, as the operator sees it", func(t *testing.T) {
		// mon-1 connected to pay-1 earlier; drop that so pay-1 must dial.
		eval(t, pay1.Node, fmt.Sprintf("erlang:disconnect_node(%s)", atom(mon1)))
		if got := eval(t, pay1.Node, fmt.Sprintf("net_adm:ping(%s)", atom(mon1))); got != "pang" {
			t.Fatalf("pay-1 -> mon-1: %s, want pang", got)
		}
		line := logHas(pay1, "netstack: refused", "dir=out", "to=mon-1", "deny default")
		status, err := o.Run("status", "--control", pay1.Control)
		must(t, err)
		explain, err := o.Run("explain", "--control", pay1.Control, "pay-1", "mon-1")
		must(t, err)
		metrics := scrapeMetrics(t, pay1, "127.0.0.1", 9101)
		var mlines []string
		for _, l := range strings.Split(metrics, "\n") {
			if strings.Contains(l, `peer="mon-1"`) && (strings.Contains(l, "deny") || strings.HasPrefix(l, "nodewire_peer_denials_total")) {
				mlines = append(mlines, l)
			}
		}
		t.Logf("what the operator sees on pay-1 for pay-1 -> mon-1:\n--- log\n%s\n--- overlayctl status\n%s--- overlayctl explain --control\n%s--- metrics\n%s",
			line, status, explain, strings.Join(mlines, "\n"))
		if !strings.HasPrefix(explain, "deny default (no rule allows payments -> monitoring port 4369)") {
			t.Errorf("explain: %s", explain)
		}
		if !regexp.MustCompile(`(?m)^mon-1: last refused \S+ ago: out pay-1 -> mon-1 port 4369: deny default`).MatchString(status) {
			t.Errorf("status does not show the refusal:\n%s", status)
		}
		for _, want := range []string{
			`nodewire_policy_decisions_total{peer="mon-1",dir="out",verdict="deny",reason="default",rule=""} `,
			`nodewire_policy_decisions_total{peer="mon-1",dir="in",verdict="deny",reason="node",rule="` + pay1.PeerFile + `:`,
			`nodewire_epmd_requests_total{peer="mon-1",dir="in",request="port_please2",verdict="refused"} `,
			`nodewire_epmd_requests_total{peer="mon-1",dir="in",request="port_please2",verdict="relayed"} `,
			`nodewire_epmd_requests_total{peer="mon-1",dir="in",request="names",verdict="relayed"} `,
			`nodewire_peer_connections_total{peer="pay-2"} `,
			`nodewire_reloads_total{result="ok"} 0`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
		if m := regexp.MustCompile(`nodewire_peer_last_handshake_seconds\{peer="pay-2"\} (\d+)`).FindStringSubmatch(metrics); m == nil || m[1] == "0" {
			t.Errorf("no handshake with pay-2 in the metrics")
		}
	})

	t.Run("explain --control resolves the nodes and their ports", func(t *testing.T) {
		out, err := o.Run("explain", "--control", pay1.Control, "mon-1", "pay-1")
		must(t, err)
		secretPort := eval(t, pay2.Node, fmt.Sprintf("{ok, L} = net_adm:names(\"%s\"), {_, P} = lists:keyfind(\"secret\", 1, L), P", pay1.Face))
		for _, re := range []string{
			`^allow rule \S+:\d+ \(monitoring -> payments ports \[erlang\] nodes \[app\]\)\n`,
			`(?m)^  app +port \d+ +allow rule `,
			`(?m)^  secret +port ` + secretPort + ` +deny node secret \(rule `,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("explain --control lacks %s:\n%s", re, out)
			}
		}
		out, err = o.Run("explain", "--control", pay1.Control, "mon-1", "pay-1", secretPort)
		must(t, err)
		if !strings.HasPrefix(out, "deny node secret") || !strings.Contains(out, "port "+secretPort+" is the distribution port of node secret on pay-1") {
			t.Errorf("explain of secret's port:\n%s", out)
		}
		js, err := o.Run("status", "--control", pay1.Control, "--json")
		must(t, err)
		var st control.Status
		must(t, json.Unmarshal([]byte(js), &st))
		if st.Self != "pay-1" || st.PublicKey == "" || len(st.Nodes) != 2 || len(st.Peers) != 2 {
			t.Errorf("status --json: %+v", st)
		}
	})

	t.Run("overlayctl ping between userspace hosts, as the policy allows", func(t *testing.T) {
		for _, tc := range []struct {
			from *cluster.OverlayHost
			to   string
		}{{pay1, "pay-2"}, {mon1, "pay-1"}} {
			out, err := o.Run("ping", "--control", tc.from.Control, "-c", "3", "-i", "200ms", tc.to)
			must(t, err)
			t.Logf("overlayctl ping %s on %s:\n%s", tc.to, tc.from.Peer, out)
			for _, want := range []string{"PING " + tc.to + " (", "from " + tc.from.Peer + " (", "icmp_seq=1 time=", "icmp_seq=3 time=", "3 packets transmitted, 3 received, 0% packet loss"} {
				if !strings.Contains(out, want) {
					t.Errorf("%s -> %s: output lacks %q", tc.from.Peer, tc.to, want)
				}
			}
		}
		// payments may not reach monitoring: one line, with the decision.
		_, err := o.Run("ping", "--control", pay1.Control, "-c", "1", "mon-1")
		if want := "pay-1 may not ping mon-1: deny default (no rule allows payments -> monitoring on any port, which ping needs)"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("overlayctl ping mon-1 on pay-1: %v, want %q", err, want)
		}
	})

	t.Run("rotate-key under a live stream: no nodedown", func(t *testing.T) {
		downs := map[string]int{}
		for _, h := range []*cluster.OverlayHost{pay1, pay2} {
			n, err := h.Node.NodeDowns(ctxFor(t, 10*time.Second))
			must(t, err)
			downs[h.Peer] = n
		}
		eval(t, pay2.Node, "register(rsink, spawn(fun Loop() -> receive {From, N} -> From ! {ack, N}, Loop() end end)), ok")
		eval(t, pay1.Node, fmt.Sprintf(`C = counters:new(2, []), persistent_term:put(nw_rot, C),
			register(rstreamer, spawn(fun() -> Loop = fun L(T0) -> N = counters:get(C, 1), {rsink, %s} ! {self(), N},
				receive {ack, N} -> T = erlang:monotonic_time(millisecond),
					case T - T0 > counters:get(C, 2) of true -> counters:put(C, 2, T - T0); false -> ok end,
					counters:add(C, 1, 1), L(T)
				after 60000 -> exit(stalled) end end,
				Loop(erlang:monotonic_time(millisecond)) end)), ok`, atom(pay2)))
		progress := func(from int) int {
			var n int
			must(t, cluster.Poll(ctxFor(t, 60*time.Second), 20*time.Millisecond, func() (bool, error) {
				var err error
				n, err = strconv.Atoi(eval(t, pay1.Node, "counters:get(persistent_term:get(nw_rot), 1)"))
				return n > from+100, err
			}))
			return n
		}
		n0 := progress(0)
		eval(t, pay1.Node, "counters:put(persistent_term:get(nw_rot), 2, 0)") // max gap from here on

		// On pay-2: a new key, the peer file updated.
		out, err := o.Run("rotate-key", "--file", pay2.PeerFile, "--self", "pay-2", "--private-key", pay2.KeyFile)
		must(t, err)
		t.Logf("rotate-key: %s", strings.TrimSpace(out))
		newPub := regexp.MustCompile(`new public key (\S+)`).FindStringSubmatch(out)
		if newPub == nil {
			t.Fatalf("rotate-key output: %s", out)
		}
		rotated := readString(t, pay2.PeerFile)
		// The other hosts get the file and reload; pay-2 reloads last. The
		// window between them is the operator's speed: here a deliberate 2 s
		// (a scenario parameter, not a wait for anything).
		const window = 2 * time.Second
		began := time.Now()
		for _, h := range []*cluster.OverlayHost{pay1, mon1} {
			must(t, os.WriteFile(h.PeerFile, []byte(rotated), 0o644))
			_, err := o.Run("reload", "--control", h.Control)
			must(t, err)
		}
		time.Sleep(window)
		inWindow, err := strconv.Atoi(eval(t, pay1.Node, "counters:get(persistent_term:get(nw_rot), 1)"))
		must(t, err)
		_, err = o.Run("reload", "--control", pay2.Control)
		must(t, err)
		switched := time.Since(began)
		// Progress past the count at the end of the window: the stream
		// stalled in it, and the pause is recorded when the next ack lands.
		n1 := progress(inWindow)
		maxGap := eval(t, pay1.Node, "counters:get(persistent_term:get(nw_rot), 2)")
		eval(t, pay1.Node, "exit(whereis(rstreamer), kill)")
		for _, h := range []*cluster.OverlayHost{pay1, pay2} {
			n, err := h.Node.NodeDowns(ctxFor(t, 10*time.Second))
			must(t, err)
			if n != downs[h.Peer] {
				t.Errorf("%s saw %d nodedowns during the rotation", h.Peer, n-downs[h.Peer])
			}
		}
		st, err := control.Client{Path: pay2.Control}.Status(ctxFor(t, 10*time.Second))
		must(t, err)
		if st.PublicKey != newPub[1] {
			t.Errorf("pay-2 runs with key %s, want %s", st.PublicKey, newPub[1])
		}
		if got := eval(t, mon1.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [])", atom(pay2))); got != atom(pay2) {
			t.Errorf("mon-1 -> pay-2 after the rotation: %s", got)
		}
		gap, err := strconv.Atoi(maxGap)
		must(t, err)
		if gap < int(window/time.Millisecond)/2 {
			t.Errorf("longest pause %d ms across a %v window: the reloads did not cut pay-1 off pay-2's old key", gap, window)
		}
		t.Logf("rotation: all hosts switched %v after the first reload (window %v); stream resumed, longest pause between acks %s ms; %d messages acknowledged across it; 0 nodedowns",
			switched.Round(time.Millisecond), window, maxGap, n1-n0)
	})

	t.Run("an Elixir release's env.sh puts the node on the face", func(t *testing.T) {
		root := filepath.Join(pay2.Dir, "release")
		vsnDir := filepath.Join(root, "releases", "0.1.0")
		must(t, os.MkdirAll(vsnDir, 0o755))
		vmArgs, err := os.ReadFile("../configs/rel/vm.args.eex")
		must(t, err)
		must(t, os.WriteFile(filepath.Join(vsnDir, "vm.args"), append(vmArgs, []byte("-kernel connect_all false\n")...), 0o644))
		envSh, err := os.ReadFile("../configs/rel/env.sh.eex")
		must(t, err)
		// What mix release renders: the only EEx in it is the release name.
		rendered := strings.ReplaceAll(string(envSh), "<%= @release.name %>", "shop")
		must(t, os.WriteFile(filepath.Join(vsnDir, "env.sh"), []byte(rendered), 0o755))
		// Source it as the release's bin script does, then report the result.
		cmd := exec.Command("sh", "-c", `set -e; . "$REL_VSN_DIR/env.sh"; echo "ERL_EPMD_ADDRESS=$ERL_EPMD_ADDRESS"; echo "RELEASE_NODE=$RELEASE_NODE"; echo "RELEASE_DISTRIBUTION=$RELEASE_DISTRIBUTION"; echo "RELEASE_VM_ARGS=$RELEASE_VM_ARGS"`)
		cmd.Env = append(os.Environ(), "RELEASE_ROOT="+root, "RELEASE_VSN=0.1.0", "REL_VSN_DIR="+vsnDir,
			"NODEWIRE_PEERS="+pay2.PeerFile, "NODEWIRE_SELF=pay-2", "NODEWIRE_OVERLAYCTL="+o.Ctl)
		envOut, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("env.sh: %v\n%s", err, envOut)
		}
		vars := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(string(envOut)), "\n") {
			k, v, _ := strings.Cut(l, "=")
			vars[k] = v
		}
		if vars["ERL_EPMD_ADDRESS"] != pay2.Face || vars["RELEASE_NODE"] != "shop@"+pay2.Face || vars["RELEASE_DISTRIBUTION"] != "name" {
			t.Fatalf("env.sh set %v", vars)
		}
		t.Logf("generated %s:\n%s", vars["RELEASE_VM_ARGS"], readString(t, vars["RELEASE_VM_ARGS"]))
		// Start erl as the release would: --name RELEASE_NODE, -args_file RELEASE_VM_ARGS.
		shop, err := pay2.StartNode(cluster.NodeOptions{Name: vars["RELEASE_NODE"],
			Env: []string{"ERL_EPMD_ADDRESS=" + vars["ERL_EPMD_ADDRESS"]}, Args: []string{"-args_file", vars["RELEASE_VM_ARGS"]}})
		must(t, err)
		if got := eval(t, shop, "application:get_env(kernel, inet_dist_use_interface)"); got != "{ok,{"+strings.ReplaceAll(pay2.Face, ".", ",")+"}}" {
			t.Errorf("shop's inet_dist_use_interface: %s", got)
		}
		if got := eval(t, shop, "application:get_env(kernel, connect_all)"); got != "{ok,false}" {
			t.Errorf("the release's own vm.args was not read: connect_all %s", got)
		}
		// Listening on the face only, never on the wildcard.
		listen := eval(t, shop, `lists:usort([A || P <- erlang:ports(), erlang:port_info(P, name) =:= {name, "tcp_inet"}, {ok, {A, _}} <- [inet:sockname(P)]])`)
		if strings.Contains(listen, "{0,0,0,0}") || !strings.Contains(listen, "{"+strings.ReplaceAll(pay2.Face, ".", ",")+"}") {
			t.Errorf("shop's sockets are bound to %s; want the face %s only", listen, pay2.Face)
		}
		if got := eval(t, pay1.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [])", cluster.Atom(shop.Name))); got != cluster.Atom(shop.Name) {
			t.Fatalf("pay-1 -> shop@pay-2 through the overlay: %s", got)
		}
	})
}

// scrapeMetrics fetches /metrics from overlayd inside h's namespace with
// the host's Erlang node (plain HTTP/1.0 over gen_tcp), through a file.
func scrapeMetrics(t *testing.T, h *cluster.OverlayHost, addr string, port int) string {
	t.Helper()
	path := filepath.Join(h.Dir, "metrics.txt")
	expr := fmt.Sprintf(`{ok, S} = gen_tcp:connect(%q, %d, [binary, {active, false}], 5000),
		ok = gen_tcp:send(S, <<"GET /metrics HTTP/1.0\r\nHost: nodewire\r\n\r\n">>),
		R = fun Rd(Acc) -> case gen_tcp:recv(S, 0, 5000) of {ok, B} -> Rd(<<Acc/binary, B/binary>>); {error, closed} -> Acc end end,
		Body = R(<<>>), gen_tcp:close(S), file:write_file(%q, Body)`, addr, port, path)
	if got := eval(t, h.Node, expr); got != "ok" {
		t.Fatalf("scrape: %s", got)
	}
	body := readString(t, path)
	if !strings.HasPrefix(body, "HTTP/1.0 200") && !strings.HasPrefix(body, "HTTP/1.1 200") {
		t.Fatalf("GET /metrics:\n%s", body)
	}
	return body
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
