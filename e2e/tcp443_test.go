package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
	"github.com/nodewire/nodewire/overlay/control"
)

// TestTCPFallback: two hosts between which only TCP 443 passes (nftables on
// t1 drops everything else with t2). The daemons fall back to WireGuard over
// TLS/TCP on their own, the cluster forms, erpc and a bulk transfer work;
// when UDP opens again the peers move back to UDP without a nodedown.
func TestTCPFallback(t *testing.T) {
	cluster.Require(t)
	start := time.Now()
	c := cluster.New(t, "tcp")
	o := cluster.NewOverlay(c, t, "10.81.0.0/16")
	mustRun(t, o, "add-network", "--file", o.File, "--name", "core", "--prefix", "10.81.1.0/24")
	t1, err := o.AddPeer("t1", "tcp-1", "core")
	must(t, err)
	t2, err := o.AddPeer("t2", "tcp-2", "core")
	must(t, err)
	// t3 reaches nothing but an HTTP proxy on host px (started later).
	t3, err := o.AddPeer("t3", "tcp-3", "core")
	must(t, err)
	px := c.AddHost("px")
	// Each peer also takes WireGuard over TLS on 443 at its address.
	text := mustReadFile(t, o.File)
	withTCP := regexp.MustCompile(`(?m)^(\s+)endpoint: (\S+):51820$`).ReplaceAllString(text, "${1}endpoint: ${2}:51820\n${1}tcp_endpoint: ${2}:443")
	if strings.Count(withTCP, "tcp_endpoint:") != 3 {
		t.Fatalf("could not add tcp_endpoint to:\n%s", text)
	}
	must(t, os.WriteFile(o.File, []byte(withTCP), 0o644))
	proxyURL := fmt.Sprintf("http://nw:s3cret@%s:8888", px.Addr)
	o.DaemonArgs = func(oh *cluster.OverlayHost) []string {
		if oh == t3 {
			return []string{"--proxy", proxyURL}
		}
		return []string{"--tcp-listen", ":443"}
	}

	// Between t1 and t2 only TCP to or from port 443 passes.
	a2 := t2.Addr.String()
	block := func() {
		t.Helper()
		for _, argv := range [][]string{
			{"nft", "add", "table", "inet", "nwtcp"},
			{"nft", "add", "chain", "inet", "nwtcp", "in", "{ type filter hook input priority 0; }"},
			{"nft", "add", "chain", "inet", "nwtcp", "out", "{ type filter hook output priority 0; }"},
			{"nft", "add", "rule", "inet", "nwtcp", "in", "ip", "saddr", a2, "tcp", "dport", "443", "accept"},
			{"nft", "add", "rule", "inet", "nwtcp", "in", "ip", "saddr", a2, "tcp", "sport", "443", "accept"},
			{"nft", "add", "rule", "inet", "nwtcp", "in", "ip", "saddr", a2, "drop"},
			{"nft", "add", "rule", "inet", "nwtcp", "out", "ip", "daddr", a2, "tcp", "dport", "443", "accept"},
			{"nft", "add", "rule", "inet", "nwtcp", "out", "ip", "daddr", a2, "tcp", "sport", "443", "accept"},
			{"nft", "add", "rule", "inet", "nwtcp", "out", "ip", "daddr", a2, "drop"},
		} {
			_, err := t1.Exec(ctxFor(t, 10*time.Second), argv...)
			must(t, err)
		}
	}
	block()
	unblock := func() {
		if _, err := t1.Exec(context.Background(), "nft", "delete", "table", "inet", "nwtcp"); err != nil {
			t.Errorf("unblock UDP: %v", err)
		}
	}
	blocked := true
	defer func() {
		if blocked {
			unblock()
		}
	}()

	daemons := time.Now()
	must(t, o.StartDaemon(t1))
	must(t, o.StartDaemon(t2))
	must(t, o.StartErlang(t1))
	must(t, o.StartErlang(t2))
	// WireGuard shakes hands on the first traffic: the first ping. It must
	// pass over TCP within 10 s of the daemons starting.
	transport := func(h *cluster.OverlayHost, peer string) control.PeerStatus { return peerStatus(t, h, peer) }
	erl := time.Since(daemons)
	waitPong(t, t1, t2, 10*time.Second-erl)
	t.Logf("first pong over the fallback %v after the daemons started (Erlang up after %v); setup %v",
		time.Since(daemons).Round(time.Millisecond), erl.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for _, pair := range [][2]*cluster.OverlayHost{{t1, t2}, {t2, t1}} {
		if p := transport(pair[0], pair[1].Peer); p.Transport != "tcp" {
			t.Fatalf("%s sees %s over %q (endpoint %s), want tcp", pair[0].Peer, pair[1].Peer, p.Transport, p.Endpoint)
		}
	}
	// `wg show` parses endpoints as ip:port (and crashed on anything else).
	if out, err := t1.Exec(ctxFor(t, 10*time.Second), "wg", "show", t1.Interface, "endpoints"); err != nil || !strings.Contains(string(out), a2+":") {
		t.Errorf("wg show %s endpoints: %v: %q, want an endpoint at %s", t1.Interface, err, out, a2)
	}
	if out, err := o.Run("status", "--control", t1.Control); err != nil || !strings.Contains(out, "(tcp)") {
		t.Errorf("overlayctl status: %v, no peer marked (tcp):\n%s", err, out)
	}
	startDowns(t, t1.Node)
	startDowns(t, t2.Node)

	bulk := func(via string) time.Duration {
		t.Helper()
		if got := eval(t, t1.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [])", cluster.Atom(t2.Node.Name))); got != cluster.Atom(t2.Node.Name) {
			t.Fatalf("erpc over %s: %s", via, got)
		}
		began := time.Now()
		got := eval(t, t1.Node, fmt.Sprintf("B = rand:bytes(8 bsl 20), erpc:call(%s, erlang, md5, [B], infinity) =:= erlang:md5(B)", cluster.Atom(t2.Node.Name)))
		took := time.Since(began)
		if got != "true" {
			t.Fatalf("8 MiB over %s: md5 %s", via, got)
		}
		return took
	}
	rate := func(ds []time.Duration) string {
		var s []string
		for _, d := range ds {
			s = append(s, fmt.Sprintf("%.1f", 8*1.048576/d.Seconds()))
		}
		return strings.Join(s, ", ")
	}
	var overTCP, overUDP []time.Duration
	for range 3 {
		overTCP = append(overTCP, bulk("tcp"))
	}

	unblock()
	blocked = false
	opened := time.Now()
	// The transport moves with traffic (an idle peer sends nothing to probe
	// with): ping while waiting, as a live cluster's ticks and calls would.
	err = cluster.Poll(ctxFor(t, 30*time.Second), 100*time.Millisecond, func() (bool, error) {
		eval(t, t1.Node, fmt.Sprintf("net_adm:ping(%s)", cluster.Atom(t2.Node.Name)))
		return transport(t1, t2.Peer).Transport == "udp" && transport(t2, t1.Peer).Transport == "udp", nil
	})
	if err != nil {
		for _, h := range []*cluster.OverlayHost{t1, t2} {
			t.Logf("%s:\n%s", h.Peer, h.Daemon.Tail(20))
		}
		t.Fatalf("still on TCP 30 s after UDP opened: %s sees %+v; %s sees %+v", t1.Peer, transport(t1, t2.Peer), t2.Peer, transport(t2, t1.Peer))
	}
	back := time.Since(opened)
	for range 3 {
		overUDP = append(overUDP, bulk("udp"))
	}
	if t.Failed() {
		return
	}

	// The same transfer, interleaved: t1 pins t2 to TCP (transport: tcp in
	// its copy of the peer file, applied by a reload), then back to auto.
	auto := mustReadFile(t, t1.PeerFile)
	pinned := regexp.MustCompile(`(?m)^(\s+)tcp_endpoint: `+regexp.QuoteMeta(a2)+`:443$`).ReplaceAllString(auto, "${0}\n${1}transport: tcp")
	if pinned == auto {
		t.Fatalf("no tcp_endpoint for %s in:\n%s", a2, auto)
	}
	useFile := func(text, want string) {
		t.Helper()
		must(t, os.WriteFile(t1.PeerFile, []byte(text), 0o644))
		mustRun(t, o, "reload", "--control", t1.Control)
		err := cluster.Poll(ctxFor(t, 30*time.Second), 100*time.Millisecond, func() (bool, error) {
			eval(t, t1.Node, fmt.Sprintf("net_adm:ping(%s)", cluster.Atom(t2.Node.Name)))
			return transport(t1, t2.Peer).Transport == want && transport(t2, t1.Peer).Transport == want, nil
		})
		if err != nil {
			t.Fatalf("not on %s 30 s after the reload: %s sees %+v; %s sees %+v", want, t1.Peer, transport(t1, t2.Peer), t2.Peer, transport(t2, t1.Peer))
		}
	}
	var pinTCP, pinUDP []time.Duration
	for range 3 {
		useFile(pinned, "tcp")
		pinTCP = append(pinTCP, bulk("tcp"))
		useFile(auto, "udp")
		pinUDP = append(pinUDP, bulk("udp"))
	}
	var ratios []string
	for i := range pinTCP {
		ratios = append(ratios, fmt.Sprintf("%.2f", pinTCP[i].Seconds()/pinUDP[i].Seconds()))
	}
	t.Logf("interleaved 8 MiB erpc md5, pinned to TCP by reload vs back on UDP: TCP %s MB/s, UDP %s MB/s; time ratio TCP/UDP %s",
		rate(pinTCP), rate(pinUDP), strings.Join(ratios, ", "))

	// UDP blocked in the middle of a session: once the data sent over UDP
	// has gone unanswered for 3 s (tcpbind's unansweredSends) the traffic
	// takes TCP; the session and the Erlang connection survive it.
	streamed := startStream(t, t1.Node, t2.Node, "cut")
	block()
	blocked = true
	cut := time.Now()
	n0 := streamed()
	err = cluster.Poll(ctxFor(t, 60*time.Second), 200*time.Millisecond, func() (bool, error) {
		return transport(t1, t2.Peer).Transport == "tcp" && streamed() > n0+10, nil
	})
	if err != nil {
		t.Fatalf("no traffic over TCP 60 s after UDP was cut (%d messages): %s sees %+v; %s sees %+v", streamed()-n0, t1.Peer, transport(t1, t2.Peer), t2.Peer, transport(t2, t1.Peer))
	}
	t.Logf("UDP cut mid-session: messages flow over TCP %v later", time.Since(cut).Round(time.Millisecond))
	bulk("tcp")
	unblock()
	blocked = false
	opened = time.Now()
	err = cluster.Poll(ctxFor(t, 30*time.Second), 200*time.Millisecond, func() (bool, error) {
		return transport(t1, t2.Peer).Transport == "udp" && transport(t2, t1.Peer).Transport == "udp", nil
	})
	if err != nil {
		t.Fatalf("still on TCP 30 s after UDP opened again: %s sees %+v; %s sees %+v", t1.Peer, transport(t1, t2.Peer), t2.Peer, transport(t2, t1.Peer))
	}
	t.Logf("UDP open again: back on UDP %v later", time.Since(opened).Round(time.Millisecond))

	for _, pair := range [][2]*cluster.OverlayHost{{t1, t2}, {t2, t1}} {
		if p := transport(pair[0], pair[1].Peer); p.Transport != "udp" {
			t.Errorf("after the transfers %s sees %s over %q (endpoint %s), want udp", pair[0].Peer, pair[1].Peer, p.Transport, p.Endpoint)
		}
		if d := downs(t, pair[0].Node, pair[1].Node.Name); d != 0 {
			t.Errorf("%s saw %s go down %d times while the transport changed", pair[0].Peer, pair[1].Peer, d)
		}
	}
	if t.Failed() {
		return
	}

	// t3: only the proxy is reachable, and the proxy wants a password.
	conf := filepath.Join(c.Dir(), "tinyproxy.conf")
	proxyLog := filepath.Join(c.Dir(), "tinyproxy.log")
	must(t, os.WriteFile(conf, []byte(fmt.Sprintf("User nobody\nGroup nogroup\nPort 8888\nListen %s\nTimeout 600\n"+
		"MaxClients 20\nLogLevel Connect\nLogFile %q\nBasicAuth nw s3cret\nConnectPort 443\n", px.Addr, proxyLog)), 0o644))
	must(t, os.Chmod(c.Dir(), 0o755)) // tinyproxy, as nobody, writes its log there
	must(t, os.WriteFile(proxyLog, nil, 0o666))
	must(t, os.Chmod(proxyLog, 0o666))
	_, err = px.Start("tinyproxy", []string{"tinyproxy", "-d", "-c", conf}, nil)
	must(t, err)
	pa := px.Addr.String()
	for _, argv := range [][]string{
		{"nft", "add", "table", "inet", "nwproxy"},
		{"nft", "add", "chain", "inet", "nwproxy", "in", "{ type filter hook input priority 0; }"},
		{"nft", "add", "chain", "inet", "nwproxy", "out", "{ type filter hook output priority 0; }"},
		{"nft", "add", "rule", "inet", "nwproxy", "in", "ip", "saddr", pa, "tcp", "sport", "8888", "accept"},
		{"nft", "add", "rule", "inet", "nwproxy", "in", "iifname", "!=", "lo", "drop"},
		{"nft", "add", "rule", "inet", "nwproxy", "out", "ip", "daddr", pa, "tcp", "dport", "8888", "accept"},
		{"nft", "add", "rule", "inet", "nwproxy", "out", "oifname", "!=", "lo", "drop"},
	} {
		_, err := t3.Exec(ctxFor(t, 10*time.Second), argv...)
		must(t, err)
	}
	joined := time.Now()
	must(t, o.StartDaemon(t3))
	must(t, o.StartErlang(t3))
	waitPong(t, t3, t1, 30*time.Second)
	took := time.Since(joined)
	if got := eval(t, t3.Node, fmt.Sprintf("B = rand:bytes(1 bsl 20), erpc:call(%s, erlang, md5, [B], infinity) =:= erlang:md5(B)", cluster.Atom(t1.Node.Name))); got != "true" {
		t.Fatalf("1 MiB t3 -> t1 through the proxy: %s", got)
	}
	if p := transport(t3, t1.Peer); p.Transport != "tcp" {
		t.Errorf("t3 sees t1 over %q (endpoint %s), want tcp", p.Transport, p.Endpoint)
	}
	if l := mustReadFile(t, proxyLog); !strings.Contains(l, "CONNECT") || !strings.Contains(l, t1.Addr.String()+":443") {
		t.Errorf("the proxy's log shows no CONNECT to %s:443:\n%s", t1.Addr, l)
	}
	t.Logf("t3 joined through the HTTP proxy (CONNECT, basic auth): pong from t1 %v after its daemon started", took.Round(time.Millisecond))

	t.Logf("back on UDP %v after it opened; 8 MiB erpc md5: over TCP %s MB/s, over UDP %s MB/s; test took %v",
		back.Round(time.Millisecond), rate(overTCP), rate(overUDP), time.Since(start).Round(time.Millisecond))
}
