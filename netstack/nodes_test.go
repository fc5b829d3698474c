package netstack

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/netstack/erldist"
)

// nodesRule lets monitoring reach payments' Erlang ports, for the node
// metrics only.
func nodesRule(*world) fileOpts { return fileOpts{rulePorts: "[erlang]\n    nodes: [metrics]"} }

// TestNodeRules: a rule's nodes are enforced at both ends, on PORT_PLEASE2,
// NAMES and connections to a node's port, and counted.
func TestNodeRules(t *testing.T) {
	p := newPair(t, "pipe", nodesRule)
	w := p.w
	paySelf := p.pay.face("pay-1")
	payOnMon := p.mon.face("pay-1")
	appPort := startEcho(t, netip.AddrPortFrom(paySelf, 0))
	metricsPort := startEcho(t, netip.AddrPortFrom(paySelf, 0))
	p.pay.epmd.register("app", appPort)
	p.pay.epmd.register("metrics", metricsPort)
	epmdOnMon := netip.AddrPortFrom(payOnMon, w.epmdPort)
	payPeer := p.mon.stack.snap.Load().File.Peer("pay-1")
	countTags := func(tag byte) int { return bytes.Count(p.pay.epmd.seen(), []byte{tag}) }

	t.Run("allowed node resolves", func(t *testing.T) {
		r, err := portPlease(t, epmdOnMon, "metrics")
		if err != nil || !r.OK() || r.Port != metricsPort {
			t.Fatalf("PORT_PLEASE2 metrics: %+v, %v", r, err)
		}
		c := dialTCP(t, netip.AddrPortFrom(payOnMon, metricsPort))
		distHello(t, c, "app@mon-1") // a dist port: the handshake must name mon-1's node
		roundTrip(t, c, 64<<10)
	})

	t.Run("other node refused at the source", func(t *testing.T) {
		before := countTags(erldist.TagPortPlease2Req)
		r, err := portPlease(t, epmdOnMon, "app")
		if err != nil || r.OK() {
			t.Fatalf("PORT_PLEASE2 app: %+v, %v; want not found", r, err)
		}
		if countTags(erldist.TagPortPlease2Req) != before {
			t.Fatal("the lookup left mon-1")
		}
		if st := p.mon.stack.Stats()["pay-1"]; st.DeniedOut == 0 {
			t.Errorf("mon-1 counted no denial: %+v", st)
		}
		last := p.mon.stack.LastRefusals()["pay-1"]
		if !strings.HasPrefix(last.Decision, "deny node app (rule test.yaml:") {
			t.Errorf("last refusal %+v", last)
		}
		_, es := p.mon.stack.PolicyCounters()
		if !slices.Contains(es, EPMDCount{"pay-1", "out", "port_please2", "refused", 1}) {
			t.Errorf("EPMD counters %+v", es)
		}
	})

	// From here mon-1 runs a file without nodes: only pay-1 enforces them.
	p.mon.stack.Apply(w.snap(t, monFaces, "mon-1", fileOpts{rulePorts: "[erlang]"}))

	t.Run("other node refused at the destination", func(t *testing.T) {
		before := countTags(erldist.TagPortPlease2Req)
		r, err := portPlease(t, epmdOnMon, "app")
		if err != nil || r.OK() {
			t.Fatalf("PORT_PLEASE2 app: %+v, %v; want not found", r, err)
		}
		if countTags(erldist.TagPortPlease2Req) != before {
			t.Fatal("pay-1's epmd was asked for a node the rule does not name")
		}
		ds, es := p.pay.stack.PolicyCounters()
		if !slices.Contains(es, EPMDCount{"mon-1", "in", "port_please2", "refused", 1}) {
			t.Errorf("EPMD counters %+v", es)
		}
		found := false
		for _, d := range ds {
			found = found || d.Peer == "mon-1" && d.Dir == "in" && d.Verdict == "deny" && d.Reason == "node" && strings.HasPrefix(d.Rule, "test.yaml:")
		}
		if !found {
			t.Errorf("no deny/node decision counted: %+v", ds)
		}
	})

	t.Run("names lists allowed nodes only", func(t *testing.T) {
		reply, err := epmdExchange(t, epmdOnMon, []byte{erldist.TagNamesReq})
		if err != nil {
			t.Fatal(err)
		}
		_, names, err := erldist.ParseNames(reply)
		if err != nil || !slices.Equal(names, []erldist.NameEntry{{Name: "metrics", Port: metricsPort}}) {
			t.Fatalf("NAMES through the overlay: %v, %v", names, err)
		}
	})

	t.Run("connection to another node's port refused at the destination", func(t *testing.T) {
		// Make mon-1 open the face as if pay-1 had announced the port.
		if err := p.mon.stack.faces.ensureDist(payPeer, appPort, "app"); err != nil {
			t.Fatal(err)
		}
		if err := dialRefused(netip.AddrPortFrom(payOnMon, appPort), 10*time.Second); !isRefused(err) {
			t.Fatalf("connection to app's port: %v, want a reset", err)
		}
		if last := p.pay.stack.LastRefusals()["mon-1"]; !strings.Contains(last.Decision, "deny node app") || last.Port != appPort {
			t.Errorf("pay-1's last refusal %+v", last)
		}
	})

	t.Run("explain sees the ports", func(t *testing.T) {
		got, err := p.pay.stack.ErlangPorts(context.Background(), "pay-1")
		if err != nil || !slices.Contains(got, erldist.NameEntry{Name: "app", Port: appPort}) || !slices.Contains(got, erldist.NameEntry{Name: "metrics", Port: metricsPort}) {
			t.Fatalf("pay-1's own nodes: %v, %v", got, err)
		}
		got, _ = p.mon.stack.ErlangPorts(context.Background(), "pay-1")
		if !slices.Contains(got, erldist.NameEntry{Name: "metrics", Port: metricsPort}) {
			t.Fatalf("mon-1's ports for pay-1: %v", got)
		}
	})

	t.Run("connection to another node's port refused at the source", func(t *testing.T) {
		p.mon.stack.Apply(w.snap(t, monFaces, "mon-1", nodesRule(w)))
		if err := dialRefused(netip.AddrPortFrom(payOnMon, appPort), 5*time.Second); !isRefused(err) {
			t.Fatalf("connection to app's port: %v, want a reset", err)
		}
		if last := p.mon.stack.LastRefusals()["pay-1"]; !strings.Contains(last.Decision, "deny node app") || last.Dir != "out" {
			t.Errorf("mon-1's last refusal %+v", last)
		}
	})

	if pk := p.mon.stack.Packets(); pk.Received == 0 || pk.Sent == 0 {
		t.Errorf("packet counters %+v", pk)
	}
}

func dialTCP(t *testing.T, addr netip.AddrPort) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// dialRefused connects to addr and returns the error that ends the
// connection within d: of the dial, or of the first read.
func dialRefused(addr netip.AddrPort, d time.Duration) error {
	c, err := net.DialTimeout("tcp4", addr.String(), d)
	if err != nil {
		return err
	}
	defer c.Close()
	return readErrSoon(c, d)
}

// TestNodeRulesOnExposedPort: a port pay-1 exposes that its epmd also
// registered to a node is that node's (peers.File.Judge), so a rule's
// nodes decide it at pay-1 as on any other dist port. The forwarder used
// to let it in on the strength of expose, and the next reload closed it.
func TestNodeRulesOnExposedPort(t *testing.T) {
	p := newPair(t, "pipe", nodesRule)
	w := p.w
	startEcho(t, netip.AddrPortFrom(p.pay.face("pay-1"), w.exposePort))
	p.pay.epmd.register("app", w.exposePort)
	// mon-1 enforces no nodes and knows the port as app's: pay-1 decides.
	p.mon.stack.Apply(w.snap(t, monFaces, "mon-1", fileOpts{rulePorts: "[erlang]"}))
	payPeer := p.mon.stack.snap.Load().File.Peer("pay-1")
	if err := p.mon.stack.faces.ensureDist(payPeer, w.exposePort, "app"); err != nil {
		t.Fatal(err)
	}
	if err := dialRefused(netip.AddrPortFrom(p.mon.face("pay-1"), w.exposePort), 10*time.Second); !isRefused(err) {
		t.Fatalf("connection to app's exposed port: %v, want a reset", err)
	}
	if last := p.pay.stack.LastRefusals()["mon-1"]; !strings.HasPrefix(last.Decision, "deny node app (rule test.yaml:") || last.Port != w.exposePort {
		t.Errorf("pay-1's last refusal %+v", last)
	}
}
