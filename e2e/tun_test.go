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
)

// TestTUNOverlay is TUN mode end to end, in a mixed overlay: payments has
// pay-1 (TUN) and pay-2 (userspace); monitoring has mon-1 (TUN) and a
// laptop with the standard tools only (wg-quick + wireguard-go, no
// nodewire). One rule: monitoring -> payments on the erlang ports. Every
// node is app@PEER.nodewire, resolved through the inetrc its host's
// overlayd keeps (or, on the laptop, `overlayctl erl-inetrc`).
func TestTUNOverlay(t *testing.T) {
	cluster.Require(t)
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
		out, err := h.Exec(ctxFor(t, 10*time.Second), "ip", "-4", "-o", "addr", "show", "dev", "nw-"+h.Peer)
		must(t, err)
		if !strings.Contains(string(out), "/16") {
			t.Fatalf("%s: interface nw-%s: %s", h.Peer, h.Peer, out)
		}
		route, err := h.Exec(ctxFor(t, 10*time.Second), "ip", "route", "get", "10.77.1.2")
		must(t, err)
		if !strings.Contains(string(route), "dev nw-"+h.Peer) {
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

	suite := t
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
		// Down at the end of the suite: a later subtest pings from the laptop.
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
		// refused by pay-1's filter.
		got := eval(t, laptop.Node, `case gen_tcp:connect({10,77,1,1}, 22, [], 3000) of {ok, S} -> gen_tcp:close(S), connected; {error, E} -> E end`)
		if got == "connected" {
			t.Fatalf("laptop reached pay-1:22")
		}
		out2, err := laptop.Exec(ctxFor(t, 10*time.Second), "wg", "show", "nwlap", "latest-handshakes")
		must(t, err)
		t.Logf("wg show nwlap latest-handshakes:\n%s", out2)
	})

	t.Run("a policy change closes connections it now denies", func(t *testing.T) {
		call(t, mon1, pay1)
		connected := fmt.Sprintf("lists:member(%s, nodes(connected))", atom(pay1))
		if got := eval(t, mon1.Node, connected); got != "true" {
			t.Fatalf("mon-1 not connected to pay-1: %s", got)
		}
		const rule = "  - from: monitoring\n    to: payments\n    ports: [erlang]\n"
		for _, h := range []*cluster.OverlayHost{pay1, pay2, mon1} {
			text := mustReadFile(t, h.PeerFile)
			if !strings.Contains(text, rule) {
				t.Fatalf("%s: the rule is not where expected:\n%s", h.PeerFile, text)
			}
			must(t, os.WriteFile(h.PeerFile, []byte(strings.Replace(text, rule, "", 1)), 0o644))
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
	})

	t.Run("ping: with no rule, the userspace host ignores the laptop's ping and logs it", func(t *testing.T) {
		// The laptop's tunnel (up since its subtest) still has pay-2 (it
		// enforces nothing); the rule that let monitoring reach payments is
		// gone.
		if ok, out := systemPing(t, laptop, "10.77.1.2"); ok {
			t.Fatalf("laptop pings pay-2 with no rule: answered\n%s", out)
		}
		err := cluster.Poll(ctxFor(t, 10*time.Second), 50*time.Millisecond, func() (bool, error) {
			for _, l := range strings.Split(pay2.Daemon.Log(), "\n") {
				if strings.Contains(l, `msg="netstack: refused" dir=in from=laptop to=pay-2 proto=icmp decision="deny default (no rule allows monitoring -> payments on any port, which ping needs)"`) {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("pay-2's log does not record the refused ping:\n%s", pay2.Daemon.Tail(20))
		}
		// Within payments, ping still works.
		if ok, out := systemPing(t, pay1, "10.77.1.2"); !ok {
			t.Fatalf("pay-1 pings pay-2 (same network): no reply\n%s", out)
		}
	})

	t.Run("the TUN interface goes away with the daemon", func(t *testing.T) {
		must(t, pay1.Daemon.Stop())
		out, err := pay1.Exec(ctxFor(t, 10*time.Second), "ip", "-o", "link", "show")
		must(t, err)
		if strings.Contains(string(out), "nw-pay-1") {
			t.Fatalf("interface left behind:\n%s", out)
		}
	})
	t.Logf("e2e TUN suite took %v", time.Since(start).Round(time.Millisecond))
}
