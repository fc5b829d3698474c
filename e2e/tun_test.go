package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
	"github.com/nodewire/nodewire/overlay/control"
)

// TestTUNOverlay is TUN mode end to end, in a mixed overlay: payments has
// pay-1 (TUN) and pay-2 (userspace); monitoring has mon-1 (TUN) and a
// laptop with the standard tools only (wg-quick + wireguard-go, no
// nodewire). One rule: monitoring -> payments on the erlang ports, node app
// only. Every node is app@PEER.nodewire, resolved through the inetrc its
// host's overlayd keeps (or, on the laptop, `overlayctl erl-inetrc`).
func TestTUNOverlay(t *testing.T) {
	cluster.Require(t)
	suite := t
	start := time.Now()
	c := cluster.New(t, "tun")
	o := cluster.NewOverlay(c, t, "10.77.0.0/16")
	for _, args := range [][]string{
		{"add-network", "--file", o.File, "--name", "payments", "--prefix", "10.77.1.0/24"},
		{"add-network", "--file", o.File, "--name", "monitoring", "--prefix", "10.77.2.0/24"},
	} {
		_, err := o.Run(args...)
		must(t, err)
	}
	pay1, err := o.AddPeer("pay1", "pay-1", "payments", "--mode", "tun")
	must(t, err)
	pay2, err := o.AddPeer("pay2", "pay-2", "payments")
	must(t, err)
	mon1, err := o.AddPeer("mon1", "mon-1", "monitoring", "--mode", "tun")
	must(t, err)
	laptop, err := o.AddPeer("laptop", "laptop", "monitoring", "--mode", "wireguard")
	must(t, err)
	_, err = o.Run("allow", "--file", o.File, "--from", "monitoring", "--to", "payments", "--ports", "erlang")
	must(t, err)
	const rule = "  - from: monitoring\n    to: payments\n    ports: [erlang]\n"
	const nodesRule = rule + "    nodes: [app]\n"
	text := mustReadFile(t, o.File)
	if !strings.Contains(text, rule) {
		t.Fatalf("%s: the rule is not where expected:\n%s", o.File, text)
	}
	must(t, os.WriteFile(o.File, []byte(strings.Replace(text, rule, nodesRule, 1)), 0o644))
	_, err = o.Run("check", "--file", o.File)
	must(t, err)

	inetrc := func(h *cluster.OverlayHost) string { return filepath.Join(h.Dir, "inetrc") }
	o.DaemonArgs = func(h *cluster.OverlayHost) []string {
		args := []string{"--inetrc", inetrc(h)}
		if h != pay2 {
			args = append(args, "--mode", "tun")
		}
		return args
	}
	for _, h := range []*cluster.OverlayHost{pay1, pay2, mon1} {
		must(t, o.StartDaemon(h))
	}
	// The TUN daemons made kernel interfaces with the overlay address and
	// a route for the overlay prefix.
	for _, h := range []*cluster.OverlayHost{pay1, mon1} {
		out, err := h.Exec(ctxFor(t, 10*time.Second), "ip", "-4", "-o", "addr", "show", "dev", h.Interface)
		must(t, err)
		if !strings.Contains(string(out), "/16") {
			t.Fatalf("%s: interface %s: %s", h.Peer, h.Interface, out)
		}
		route, err := h.Exec(ctxFor(t, 10*time.Second), "ip", "route", "get", "10.77.1.2")
		must(t, err)
		if !strings.Contains(string(route), "dev "+h.Interface) {
			t.Fatalf("%s: overlay not routed to the TUN interface: %s", h.Peer, route)
		}
	}
	must(t, o.StartErlangNamed(pay1, inetrc(pay1)))
	must(t, o.StartErlangNamed(pay2, inetrc(pay2)))
	must(t, o.StartErlangNamed(mon1, inetrc(mon1), "-hidden"))
	t.Logf("three hosts up in %v", time.Since(start).Round(time.Millisecond))
	atom := func(h *cluster.OverlayHost) string { return cluster.Atom(h.Node.Name) }
	call := func(t *testing.T, from, to *cluster.OverlayHost) {
		t.Helper()
		if got := eval(t, from.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [])", atom(to))); got != atom(to) {
			t.Fatalf("%s -> %s answered %s", from.Peer, to.Peer, got)
		}
	}

	t.Run("names resolve per mode: a face on the userspace host, the overlay address on a TUN host", func(t *testing.T) {
		if got := mustReadFile(t, inetrc(pay2)); !strings.Contains(got, `{host, {127,77,1,1}, ["pay-1.nodewire"]}.`) {
			t.Errorf("pay-2's inetrc:\n%s", got)
		}
		if got := mustReadFile(t, inetrc(pay1)); !strings.Contains(got, `{host, {10,77,1,2}, ["pay-2.nodewire"]}.`) {
			t.Errorf("pay-1's inetrc:\n%s", got)
		}
	})

	t.Run("status shows each daemon's mode", func(t *testing.T) {
		for _, tc := range []struct {
			h    *cluster.OverlayHost
			mode string
		}{{pay1, "tun"}, {pay2, "userspace"}} {
			out, err := o.Run("status", "--control", tc.h.Control)
			must(t, err)
			if want := fmt.Sprintf("(network payments, %s mode)", tc.mode); !strings.Contains(out, want) {
				t.Errorf("%s: status lacks %q:\n%s", tc.h.Peer, want, out)
			}
			out, err = o.Run("status", "--control", tc.h.Control, "--json")
			must(t, err)
			if want := fmt.Sprintf(`"mode": %q`, tc.mode); !strings.Contains(out, want) {
				t.Errorf("%s: status --json lacks %s", tc.h.Peer, want)
			}
		}
	})

	t.Run("erpc between a TUN host and a userspace host, both ways", func(t *testing.T) {
		call(t, pay1, pay2)
		call(t, pay2, pay1)
	})

	t.Run("8 MiB binary crosses the TUN filter intact", func(t *testing.T) {
		got := eval(t, pay2.Node, fmt.Sprintf("B = rand:bytes(8 bsl 20), erpc:call(%s, erlang, md5, [B]) =:= erlang:md5(B)", atom(pay1)))
		if got != "true" {
			t.Fatalf("md5 mismatch: %s", got)
		}
	})

	t.Run("monitoring (TUN) may call payments on TUN and userspace hosts", func(t *testing.T) {
		call(t, mon1, pay1)
		call(t, mon1, pay2)
	})

	// systemPing runs the system's ping once from h to addr and reports
	// whether a reply came (-W bounds the wait).
	systemPing := func(t *testing.T, h *cluster.OverlayHost, addr string) (bool, string) {
		t.Helper()
		out, err := h.Exec(ctxFor(t, 10*time.Second), "ping", "-n", "-c", "1", "-W", "2", addr)
		return err == nil && strings.Contains(string(out), "1 received"), string(out)
	}

	t.Run("ping: the userspace host answers where the policy allows; overlayctl ping says why not", func(t *testing.T) {
		// pay-1 (TUN) and pay-2 (userspace) share a network: the system's
		// ping on pay-1 gets pay-2's stack to answer.
		if ok, out := systemPing(t, pay1, "10.77.1.2"); !ok {
			t.Fatalf("pay-1 pings pay-2 (same network): no reply\n%s", out)
		}
		// pay-2's daemon pings the TUN host.
		out, err := o.Run("ping", "--control", pay2.Control, "-c", "2", "-i", "200ms", "pay-1")
		must(t, err)
		t.Logf("overlayctl ping pay-1 on pay-2:\n%s", out)
		for _, want := range []string{"PING pay-1 (10.77.1.1) from pay-2 (10.77.1.2)", "icmp_seq=1 time=", "icmp_seq=2 time=", "2 packets transmitted, 2 received"} {
			if !strings.Contains(out, want) {
				t.Errorf("overlayctl ping output lacks %q", want)
			}
		}
		// payments may not reach monitoring: refused with the decision.
		_, err = o.Run("ping", "--control", pay2.Control, "-c", "1", "mon-1")
		if want := "pay-2 may not ping mon-1: deny default (no rule allows payments -> monitoring on every port, which ping with a TUN host needs)"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("overlayctl ping mon-1 on pay-2: %v, want %q", err, want)
		}
		// A TUN daemon has no stack to ping from.
		_, err = o.Run("ping", "--control", pay1.Control, "pay-2")
		if want := "this daemon runs in TUN mode: ping 10.77.1.2 (pay-2) with the system ping"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("overlayctl ping on the TUN host: %v, want %q", err, want)
		}
	})

	t.Run("payments may not call monitoring: refused at once, logged with the decision", func(t *testing.T) {
		for _, from := range []*cluster.OverlayHost{pay1, pay2} {
			eval(t, from.Node, fmt.Sprintf("erlang:disconnect_node(%s)", atom(mon1)))
			began := time.Now()
			if got := eval(t, from.Node, fmt.Sprintf("net_adm:ping(%s)", atom(mon1))); got != "pang" {
				t.Fatalf("%s -> mon-1: %s, want pang", from.Peer, got)
			}
			if took := time.Since(began); took > 5*time.Second {
				t.Errorf("%s: refusal took %v: it should be immediate", from.Peer, took)
			}
		}
		ctx := ctxFor(t, 10*time.Second)
		err := cluster.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
			log := pay1.Daemon.Log()
			return strings.Contains(log, "packetfilter: refused") && strings.Contains(log, "deny default") && strings.Contains(log, "to=mon-1"), nil
		})
		if err != nil {
			t.Fatalf("pay-1's log does not record the refusal:\n%s", pay1.Daemon.Tail(20))
		}
	})

	t.Run("EPMD admin requests from a peer are refused by epmd itself", func(t *testing.T) {
		before := eval(t, pay1.Node, "erl_epmd:names()")
		// From mon-1 (TUN: its kernel connects straight to pay-1's epmd,
		// which sees a non-local source): ALIVE2 for a fake name, STOP,
		// KILL and DUMP, each on its own connection.
		reqs := []string{
			`<<120, 9999:16, 77, 0, 6:16, 5:16, 4:16, "evil", 0:16>>`,
			`<<115, "app">>`,
			`<<107>>`,
			`<<100>>`,
		}
		for _, body := range reqs {
			expr := fmt.Sprintf(`Body = %s, {ok, S} = gen_tcp:connect({10,77,1,1}, 4369, [binary, {active, false}], 5000), ok = gen_tcp:send(S, [<<(byte_size(Body)):16>>, Body]), R = gen_tcp:recv(S, 0, 5000), gen_tcp:close(S), R`, body)
			if got := eval(t, mon1.Node, expr); got != "{error,closed}" {
				t.Errorf("request %s: %s, want {error,closed} (epmd ignores it and hangs up)", body, got)
			}
		}
		// PORT_PLEASE2 is answered: the same path works for lookups.
		got := eval(t, mon1.Node, `{ok, S} = gen_tcp:connect({10,77,1,1}, 4369, [binary, {active, false}], 5000), ok = gen_tcp:send(S, <<4:16, 122, "app">>), {ok, <<119, 0, _/binary>>} = gen_tcp:recv(S, 0, 5000), gen_tcp:close(S), ok`)
		if got != "ok" {
			t.Fatalf("PORT_PLEASE2 from mon-1: %s", got)
		}
		after := eval(t, pay1.Node, "erl_epmd:names()")
		if after != before || strings.Contains(after, "evil") {
			t.Fatalf("pay-1's epmd changed: before %s, after %s", before, after)
		}
		call(t, mon1, pay1)
	})

	t.Run("a standard WireGuard peer (wg-quick) reaches Erlang on TUN and userspace hosts, as the policy allows", func(t *testing.T) {
		conf := filepath.Join(laptop.Dir, "nwlap.conf")
		out, err := o.Run("wg-config", "--file", o.File, "--private-key", laptop.KeyFile, "laptop")
		must(t, err)
		must(t, os.WriteFile(conf, []byte(out), 0o600))
		t.Logf("wg-config laptop:\n%s", out)
		wgLog := filepath.Join(laptop.Dir, "wg-quick.log")
		_, err = laptop.Exec(ctxFor(t, 60*time.Second), "sh", "-c", "wg-quick up "+conf+" >"+wgLog+" 2>&1")
		log, _ := os.ReadFile(wgLog)
		if err != nil {
			t.Fatalf("wg-quick up: %v\n%s", err, log)
		}
		// Up until the suite ends: a later subtest sends from the laptop
		// once the policy no longer lets monitoring reach payments.
		suite.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = laptop.Exec(ctx, "wg-quick", "down", conf)
		})
		t.Logf("wg-quick up:\n%s", log)
		laptopRC := filepath.Join(laptop.Dir, "inetrc")
		_, err = o.Run("erl-inetrc", "--file", o.File, "--self", "laptop", "--out", laptopRC)
		must(t, err)
		laptop.PeerFile = o.File
		must(t, o.StartErlangNamed(laptop, laptopRC, "-hidden"))
		call(t, laptop, pay1) // TUN host, by the rule
		call(t, laptop, pay2) // userspace host, by the rule
		call(t, laptop, mon1) // same network
		// monitoring reaches payments (on Erlang's ports): the userspace
		// host answers the laptop's ping.
		if ok, out := systemPing(t, laptop, "10.77.1.2"); !ok {
			t.Fatalf("laptop pings pay-2 (a rule lets monitoring reach payments): no reply\n%s", out)
		}
		// pay-1 may not open anything to monitoring: its filter refuses
		// (once the connection the laptop opened is gone).
		eval(t, pay1.Node, fmt.Sprintf("erlang:disconnect_node(%s)", atom(laptop)))
		if got := eval(t, pay1.Node, fmt.Sprintf("net_adm:ping(%s)", atom(laptop))); got != "pang" {
			t.Fatalf("pay-1 -> laptop: %s, want pang", got)
		}
		// The laptop enforces nothing: a port pay-1 does not offer is
		// refused by pay-1's filter, with a reset (monitoring reaches
		// payments on the erlang ports, so its client should fail at
		// once), as pay-2's userspace stack refuses it.
		for _, addr := range []string{"{10,77,1,1}", "{10,77,1,2}"} {
			began := time.Now()
			got := eval(t, laptop.Node, `case gen_tcp:connect(`+addr+`, 22, [], 10000) of {ok, S} -> gen_tcp:close(S), connected; {error, E} -> E end`)
			if got != "econnrefused" {
				t.Fatalf("laptop -> %s:22: %s, want econnrefused (a reset from the host's overlayd)", addr, got)
			}
			t.Logf("laptop -> %s:22 refused in %v", addr, time.Since(began).Round(time.Millisecond))
		}
		out2, err := laptop.Exec(ctxFor(t, 10*time.Second), "wg", "show", "nwlap", "latest-handshakes")
		must(t, err)
		t.Logf("wg show nwlap latest-handshakes:\n%s", out2)
	})

	t.Run("a TUN host enforces nodes: and the send_name check", func(t *testing.T) {
		// A second node on pay-1 that the rule does not name.
		secret, err := pay1.StartNode(cluster.NodeOptions{Name: "secret@pay-1.nodewire",
			Env: append(append([]string{}, pay1.ErlEnv...), "ERL_INETRC="+inetrc(pay1)), Args: pay1.ErlArgs})
		must(t, err)
		t.Cleanup(func() { _ = secret.Stop() })
		secretAtom := cluster.Atom(secret.Name)
		// Same network: every node.
		if got := eval(t, pay2.Node, fmt.Sprintf("net_adm:ping(%s)", secretAtom)); got != "pong" {
			t.Fatalf("pay-2 -> secret on pay-1: %s, want pong", got)
		}
		// mon-1's lookup of secret is reset by pay-1's filter; app still answers.
		if got := eval(t, mon1.Node, fmt.Sprintf("net_adm:ping(%s)", secretAtom)); got != "pang" {
			t.Fatalf("mon-1 -> secret on pay-1: %s, want pang", got)
		}
		call(t, mon1, pay1)

		// The laptop enforces nothing: it sends what it likes, and pay-1
		// resets it. EPMD first: NAMES, and PORT_PLEASE2 for secret.
		epmd := func(req string) string {
			return eval(t, laptop.Node, `{ok, S} = gen_tcp:connect({10,77,1,1}, 4369, [binary, {active, false}], 5000), R = case gen_tcp:send(S, `+req+`) of ok -> gen_tcp:recv(S, 0, 5000); E -> E end, gen_tcp:close(S), R`)
		}
		for _, req := range []string{`<<1:16, 110>>`, `<<7:16, 122, "secret">>`} {
			if got := epmd(req); !strings.HasPrefix(got, "{error,") {
				t.Errorf("laptop's EPMD request %s: %s, want the connection reset", req, got)
			}
		}
		got := epmd(`<<4:16, 122, "app">>`)
		if !strings.HasPrefix(got, "{ok,<<119,0,") {
			t.Fatalf("laptop's PORT_PLEASE2 for app: %s", got)
		}
		// Then a distribution handshake naming pay-2's node, on app's port.
		forged := eval(t, laptop.Node, `{ok, <<119, 0, Port:16, _/binary>>} = begin {ok, S0} = gen_tcp:connect({10,77,1,1}, 4369, [binary, {active, false}], 5000), ok = gen_tcp:send(S0, <<4:16, 122, "app">>), R0 = gen_tcp:recv(S0, 0, 5000), gen_tcp:close(S0), R0 end,
			{ok, S} = gen_tcp:connect({10,77,1,1}, Port, [binary, {active, false}], 5000),
			Name = <<"evil@pay-2.nodewire">>, Body = <<$N, 16#0d07df7fbd:64, 1:32, (byte_size(Name)):16, Name/binary>>,
			R = case gen_tcp:send(S, <<(byte_size(Body)):16, Body/binary>>) of ok -> gen_tcp:recv(S, 0, 5000); E -> E end, gen_tcp:close(S), R`)
		if !strings.HasPrefix(forged, "{error,") {
			t.Fatalf("laptop's send_name as evil@pay-2.nodewire: %s, want the connection reset", forged)
		}
		ctx := ctxFor(t, 10*time.Second)
		err = cluster.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
			log := pay1.Daemon.Log()
			for _, want := range []string{"NAMES refused", "PORT_PLEASE2 refused", "deny node secret", `node name \"evil@pay-2.nodewire\" is not peer laptop's`} {
				if !strings.Contains(log, want) {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("pay-1's log does not record the refusals:\n%s", pay1.Daemon.Tail(30))
		}
		// The genuine nodes still connect: their send_name names their host.
		eval(t, laptop.Node, fmt.Sprintf("erlang:disconnect_node(%s)", atom(pay1)))
		call(t, laptop, pay1)
		if strings.Contains(pay1.Daemon.Log(), "nodes: list is not enforced") {
			t.Errorf("pay-1 still warns that TUN mode does not enforce nodes:")
		}
	})

	t.Run("a policy change closes connections it now denies", func(t *testing.T) {
		call(t, mon1, pay1)
		connected := fmt.Sprintf("lists:member(%s, nodes(connected))", atom(pay1))
		if got := eval(t, mon1.Node, connected); got != "true" {
			t.Fatalf("mon-1 not connected to pay-1: %s", got)
		}
		for _, h := range []*cluster.OverlayHost{pay1, pay2, mon1} {
			text := mustReadFile(t, h.PeerFile)
			if !strings.Contains(text, nodesRule) {
				t.Fatalf("%s: the rule is not where expected:\n%s", h.PeerFile, text)
			}
			must(t, os.WriteFile(h.PeerFile, []byte(strings.Replace(text, nodesRule, "", 1)), 0o644))
			_, err := o.Run("reload", "--control", h.Control)
			must(t, err)
		}
		began := time.Now()
		ctx := ctxFor(t, 30*time.Second)
		err := cluster.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
			out, err := mon1.Node.Eval(ctx, connected)
			return err == nil && out == "false", nil
		})
		if err != nil {
			t.Fatalf("mon-1 still connected to pay-1 after the rule was removed: %v", err)
		}
		t.Logf("connection closed %v after the reloads", time.Since(began).Round(time.Millisecond))
		if !strings.Contains(pay1.Daemon.Log(), "packetfilter: closed") {
			t.Errorf("pay-1's log does not record the closed flow:\n%s", pay1.Daemon.Tail(20))
		}
		if got := eval(t, mon1.Node, fmt.Sprintf("net_adm:ping(%s)", atom(pay1))); got != "pang" {
			t.Fatalf("mon-1 -> pay-1 after the rule was removed: %s", got)
		}
		call(t, pay1, pay2)
		// Monitoring now reaches payments on no port: the laptop, which
		// enforces nothing, gets no answer at all from pay-1, on epmd or
		// on any other port, though its packets arrive (pay-1 logs them).
		for _, port := range []string{"4369", "22"} {
			got := eval(t, laptop.Node, `case gen_tcp:connect({10,77,1,1}, `+port+`, [], 3000) of {ok, S} -> gen_tcp:close(S), connected; {error, E} -> E end`)
			if got != "timeout" {
				t.Fatalf("laptop -> pay-1:%s after the rule was removed: %s, want timeout (no answer)", port, got)
			}
		}
		err = cluster.Poll(ctxFor(t, 10*time.Second), 50*time.Millisecond, func() (bool, error) {
			for _, l := range strings.Split(pay1.Daemon.Log(), "\n") {
				if strings.Contains(l, "packetfilter: refused") && strings.Contains(l, "from=laptop") && strings.Contains(l, "port=4369") {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("pay-1 did not log the laptop's refused SYN:\n%s", pay1.Daemon.Tail(20))
		}
	})

	t.Run("ping: with no rule, the userspace host ignores the laptop's ping and logs it", func(t *testing.T) {
		// The laptop's tunnel (up since its subtest) still has pay-2 (it
		// enforces nothing); the rule that let monitoring reach payments is
		// gone.
		if ok, out := systemPing(t, laptop, "10.77.1.2"); ok {
			t.Fatalf("laptop pings pay-2 with no rule: answered\n%s", out)
		}
		// Lazy peers: the policy lets the laptop and pay-2 exchange
		// nothing, so the laptop is no WireGuard peer of pay-2 any more
		// and its packets never reach pay-2's stack (which logged their
		// refusal as `netstack: refused ... proto=icmp` before). pay-2's
		// status says so, and its log names the laptop when the laptop's
		// WireGuard, hearing nothing back, sends a new handshake (15 s
		// after the unanswered ping).
		st, err := control.Client{Path: pay2.Control}.Status(ctxFor(t, 10*time.Second))
		must(t, err)
		for _, p := range st.Peers {
			if p.Name == "laptop" && (!p.Unreachable || p.Endpoint != "") {
				t.Errorf("pay-2's status of the laptop: unreachable %v, endpoint %q; want unreachable, no endpoint", p.Unreachable, p.Endpoint)
			}
		}
		refused := `msg="wireguard: refused handshake" from=laptop endpoint=` + laptop.Addr.String() + `:51820 reason="no WireGuard peer here: the policy lets neither laptop (monitoring) nor pay-2 (payments) open anything to the other"`
		var line string
		err = cluster.Poll(ctxFor(t, 40*time.Second), 100*time.Millisecond, func() (bool, error) {
			for _, l := range strings.Split(pay2.Daemon.Log(), "\n") {
				if strings.Contains(l, refused) {
					line = l
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("pay-2's log does not record the laptop's refused handshake:\n%s", pay2.Daemon.Tail(20))
		}
		t.Logf("pay-2: %s", line)
		// Within payments, ping still works.
		if ok, out := systemPing(t, pay1, "10.77.1.2"); !ok {
			t.Fatalf("pay-1 pings pay-2 (same network): no reply\n%s", out)
		}
	})

	t.Run("the TUN interface goes away with the daemon", func(t *testing.T) {
		must(t, pay1.Daemon.Stop())
		out, err := pay1.Exec(ctxFor(t, 10*time.Second), "ip", "-o", "link", "show")
		must(t, err)
		if strings.Contains(string(out), pay1.Interface) {
			t.Fatalf("interface left behind:\n%s", out)
		}
	})
	t.Logf("e2e TUN suite took %v", time.Since(start).Round(time.Millisecond))
}
