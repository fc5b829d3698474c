package netstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodewire/nodewire/netstack/erldist"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// erlangRule lets monitoring reach payments' Erlang ports and the exposed
// port; nothing lets payments reach monitoring.
func erlangRule(w *world) fileOpts {
	return fileOpts{rulePorts: "[erlang, " + itoa(w.exposePort) + "]"}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

func TestOverlay(t *testing.T) {
	for _, link := range []string{"pipe", "wireguard"} {
		t.Run(link, func(t *testing.T) { testOverlay(t, link) })
	}
}

func testOverlay(t *testing.T, link string) {
	p := newPair(t, link, erlangRule)
	w := p.w

	paySelf := p.pay.face("pay-1")  // 127.81.1.1: pay-1's own face, on pay-1
	payOnMon := p.mon.face("pay-1") // 127.82.1.1: pay-1 as mon-1 sees it
	monOnPay := p.pay.face("mon-1") // 127.81.2.1: mon-1 as pay-1 sees it
	nodePort := startEcho(t, netip.AddrPortFrom(paySelf, 0))
	p.pay.epmd.register("app", nodePort)
	startEcho(t, netip.AddrPortFrom(paySelf, w.exposePort))

	t.Run("port please through a face opens the node's face first", func(t *testing.T) {
		if slices.Contains(p.mon.stack.faces.listening("pay-1"), nodePort) {
			t.Fatal("face for the node's port open before any lookup")
		}
		var resp erldist.Port2Resp
		var err error
		// The first exchange may wait for a WireGuard handshake.
		resp, err = portPlease(t, netip.AddrPortFrom(payOnMon, w.epmdPort), "app")
		if err != nil {
			t.Fatalf("PORT_PLEASE2: %v", err)
		}
		if !resp.OK() || resp.Port != nodePort || string(resp.Name) != "app" {
			t.Fatalf("reply %+v, want ok port %d", resp, nodePort)
		}
		// The reply is only written once the listener exists.
		if !slices.Contains(p.mon.stack.faces.listening("pay-1"), nodePort) {
			t.Fatalf("no face listener on %v:%d when the reply arrived", payOnMon, nodePort)
		}
		if r, err := portPlease(t, netip.AddrPortFrom(payOnMon, w.epmdPort), "nobody"); err != nil || r.OK() {
			t.Fatalf("unknown name: %+v, %v; want a not-found reply", r, err)
		}
	})

	t.Run("dist stream both ways with half-close", func(t *testing.T) {
		c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(payOnMon, nodePort).String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		distHello(t, c, "app@mon-1")
		roundTrip(t, c.(*net.TCPConn), 4<<20)
		st := p.mon.stack.Stats()["pay-1"]
		if st.BytesOut < 4<<20 || st.BytesIn < 4<<20 {
			t.Errorf("mon-1 stats for pay-1: %+v, want ≥4 MiB each way", st)
		}
		if in := p.pay.stack.Stats()["mon-1"]; in.BytesIn < 4<<20 {
			t.Errorf("pay-1 stats for mon-1: %+v, want ≥4 MiB in", in)
		}
	})

	t.Run("exposed port", func(t *testing.T) {
		c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(payOnMon, w.exposePort).String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		roundTrip(t, c.(*net.TCPConn), 64<<10)
	})

	t.Run("names allowed by an erlang rule", func(t *testing.T) {
		reply, err := epmdExchange(t, netip.AddrPortFrom(payOnMon, w.epmdPort), []byte{erldist.TagNamesReq})
		if err != nil {
			t.Fatal(err)
		}
		_, names, err := erldist.ParseNames(reply)
		if err != nil || !slices.Contains(names, erldist.NameEntry{Name: "app", Port: nodePort}) {
			t.Fatalf("NAMES: %v, %v", names, err)
		}
	})

	t.Run("admin requests never reach epmd", func(t *testing.T) {
		before := p.pay.epmd.seen()
		for _, body := range [][]byte{alive2(9999, "evil"), {erldist.TagKillReq}, {erldist.TagStopReq}, {erldist.TagDumpReq}, {42}} {
			reply, _ := epmdExchange(t, netip.AddrPortFrom(payOnMon, w.epmdPort), body)
			if len(reply) != 0 {
				t.Errorf("%s: got a reply %v", erldist.RequestName(body[0]), reply)
			}
		}
		after := p.pay.epmd.seen()
		if !bytes.Equal(before, after) {
			t.Fatalf("epmd saw %v after refused requests (before %v)", after[len(before):], before)
		}
		for _, tag := range after {
			if tag != erldist.TagPortPlease2Req && tag != erldist.TagNamesReq {
				t.Fatalf("epmd saw %s", erldist.RequestName(tag))
			}
		}
		if st := p.pay.stack.Stats()["mon-1"]; st.DeniedIn < 5 {
			t.Errorf("pay-1 denials from mon-1 = %d, want ≥5", st.DeniedIn)
		}
	})

	t.Run("denied pair refused at the source", func(t *testing.T) {
		start := time.Now()
		_, err := portPlease(t, netip.AddrPortFrom(monOnPay, w.epmdPort), "app")
		if err == nil {
			t.Fatal("pay-1 → mon-1 epmd answered; policy denies it")
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("refusal took %v", d)
		}
		if st := p.pay.stack.Stats()["mon-1"]; st.DeniedOut == 0 {
			t.Errorf("pay-1 DeniedOut for mon-1 = 0")
		}
	})

	t.Run("a network with no way to the destination gets no answer there", func(t *testing.T) {
		before := p.mon.stack.Stats()["pay-1"].DeniedIn
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// Bypass pay-1's face (and its policy check): dial mon-1 directly.
		// No rule lets payments reach monitoring, so mon-1 stays silent
		// rather than resetting: a probe learns nothing.
		c, err := p.pay.stack.dialOverlay(ctx, netip.MustParseAddrPort("10.77.2.1:"+itoa(w.epmdPort)))
		if err == nil {
			c.Close()
			t.Fatal("mon-1 accepted pay-1 on its epmd port; policy denies it")
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("dial error %v, want no answer (the dial's deadline)", err)
		}
		if after := p.mon.stack.Stats()["pay-1"].DeniedIn; after <= before {
			t.Errorf("mon-1 DeniedIn for pay-1 went %d → %d", before, after)
		}
	})

	t.Run("a peer that may reach the destination gets a reset on other ports", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// monitoring may reach pay-1's Erlang ports and the exposed one,
		// so a port outside them is refused at once, not left to time out.
		_, err := p.mon.stack.dialOverlay(ctx, netip.MustParseAddrPort("10.77.1.1:1"))
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("dial error %v, want connection refused", err)
		}
	})

	t.Run("only registered and exposed ports reach the host", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A port something listens on, but no node registered: refused.
		stray := startEcho(t, netip.AddrPortFrom(paySelf, 0))
		if c, err := p.mon.stack.dialOverlay(ctx, netip.MustParseAddrPort("10.77.1.1:"+itoa(stray))); err == nil {
			c.Close()
			t.Fatal("reached a port that is neither registered nor exposed")
		}
		// Registered in epmd but never looked up through the relay: found
		// by asking the local epmd for NAMES (whose answer is cached for
		// namesTTL, so the new name may take that long to show).
		other := startEcho(t, netip.AddrPortFrom(paySelf, 0))
		p.pay.epmd.register("other", other)
		var c *overlayConn
		waitFor(t, 5*time.Second, "registered port to be reachable", func() bool {
			var err error
			c, err = p.mon.stack.dialOverlay(ctx, netip.MustParseAddrPort("10.77.1.1:"+itoa(other)))
			return err == nil
		})
		distHello(t, c, "app@mon-1")
		roundTrip(t, c, 1000)
	})

	t.Run("a dist connection naming another peer's node is refused", func(t *testing.T) {
		before := p.pay.stack.Stats()["mon-1"].DeniedIn
		for _, msg := range [][]byte{
			erldist.AppendSendName(nil, "app@pay-1"), // pay-1's own node, from mon-1
			sendNameOld("app@" + paySelf.String()),   // the same, old format
			[]byte("GET / HTTP/1.0\r\n\r\n"),         // not a handshake
		} {
			c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(payOnMon, nodePort).String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.Write(msg)
			if err := readErrSoon(c, 5*time.Second); err == nil || !isRefused(err) {
				t.Errorf("send_name %q: %v, want the connection reset", msg, err)
			}
			c.Close()
		}
		if after := p.pay.stack.Stats()["mon-1"].DeniedIn; after != before+3 {
			t.Errorf("pay-1 DeniedIn for mon-1 went %d -> %d, want +3", before, after)
		}
	})

	t.Run("apply closes what the new policy denies, keeps the rest", func(t *testing.T) {
		dist, err := net.DialTimeout("tcp4", netip.AddrPortFrom(payOnMon, nodePort).String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		distHello(t, dist, "app@mon-1")
		ping(t, dist)
		defer dist.Close()
		exposed := dialAndPing(t, netip.AddrPortFrom(payOnMon, w.exposePort))
		defer exposed.Close()
		waitFor(t, 5*time.Second, "both connections tracked", func() bool {
			return p.mon.stack.Stats()["pay-1"].Open >= 2 && p.pay.stack.Stats()["mon-1"].Open >= 2
		})

		// The exposed port only: Erlang's ports are no longer allowed.
		only := fileOpts{rulePorts: "[" + itoa(w.exposePort) + "]"}
		p.pay.stack.Apply(w.snap(t, payFaces, "pay-1", only))
		if err := readErrSoon(dist, 5*time.Second); err == nil || !isRefused(err) {
			t.Fatalf("dist connection still open after the destination's policy changed: %v", err)
		}
		p.mon.stack.Apply(w.snap(t, monFaces, "mon-1", only))
		ping(t, exposed)
		if _, err := portPlease(t, netip.AddrPortFrom(payOnMon, w.epmdPort), "app"); err == nil {
			t.Fatal("epmd still reachable after erlang was removed from the rule")
		}
	})

	t.Run("removing a peer closes its faces and connections", func(t *testing.T) {
		exposed := dialAndPing(t, netip.AddrPortFrom(payOnMon, w.exposePort))
		defer exposed.Close()
		p.mon.stack.Apply(w.snap(t, monFaces, "mon-1", fileOpts{noPay: true}))
		if got := p.mon.stack.faces.listening("pay-1"); len(got) != 0 {
			t.Fatalf("faces still open for removed pay-1: %v", got)
		}
		if _, err := net.DialTimeout("tcp4", netip.AddrPortFrom(payOnMon, w.epmdPort).String(), time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial removed peer's face: %v, want connection refused", err)
		}
		if err := readErrSoon(exposed, 5*time.Second); err == nil || !isRefused(err) {
			t.Fatalf("connection to removed peer still open: %v", err)
		}
		if _, ok := p.mon.stack.Stats()["pay-1"]; ok {
			t.Error("stats still list the removed peer")
		}
		waitFor(t, 5*time.Second, "tracked connections of pay-1 to go", func() bool {
			p.mon.stack.conns.mu.Lock()
			defer p.mon.stack.conns.mu.Unlock()
			return len(p.mon.stack.conns.byPeer["pay-1"]) == 0
		})
	})
}

// roundTrip sends n random bytes through an echo, half-closes, and checks
// that exactly those bytes come back before the echo's FIN.
func roundTrip(t *testing.T, c interface {
	net.Conn
	CloseWrite() error
}, n int) {
	t.Helper()
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read echo: %v (got %d of %d bytes)", err, len(got), n)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("echo differs: %d bytes back, %d sent", len(got), n)
	}
}

// dialAndPing opens a connection to an echo through a face and checks it
// carries data.
func dialAndPing(t *testing.T, addr netip.AddrPort) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ping(t, c)
	return c
}

func ping(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("ping: %v", err)
	}
	var b [4]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || string(b[:]) != "ping" {
		t.Fatalf("pong: %q, %v", b, err)
	}
	c.SetDeadline(time.Time{})
}

// TestRepeatedLookups makes many short connections from one peer to
// another's epmd, as a cluster of many nodes does. Source ports get reused
// while the other end still holds the previous connection in TIME-WAIT; the
// SYN must get through (see timeWait) instead of timing out the dial.
func TestRepeatedLookups(t *testing.T) {
	p := newPair(t, "pipe", erlangRule)
	p.pay.epmd.register("app", 4370)
	var slowest time.Duration
	const lookups = 2000
	for i := range lookups {
		start := time.Now()
		r, err := portPlease(t, netip.AddrPortFrom(p.mon.face("pay-1"), p.w.epmdPort), "app")
		if err != nil || !r.OK() || r.Port != 4370 {
			t.Fatalf("lookup %d: %+v, %v", i, r, err)
		}
		slowest = max(slowest, time.Since(start))
	}
	t.Logf("%d lookups, slowest %v", lookups, slowest)
}

// TestLookupTimeWaitOnClient checks which end closes an EPMD lookup first:
// the asking host's proxy, so TIME-WAIT lands on its stack, whose port
// picker skips those ports, and never on the answering host's forwarder,
// which would drop a SYN that reuses the 4-tuple (see relay.go). Both
// stacks hold TIME-WAIT for a minute here, so the endpoints are counted
// without racing their expiry.
func TestLookupTimeWaitOnClient(t *testing.T) {
	for _, tc := range []struct {
		name, node string
		ok         bool
	}{
		{"found", "app", true},
		{"not found", "nobody", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, "pipe", erlangRule)
			p.pay.epmd.register("app", 4370)
			holdTimeWait(t, p.pay.stack, time.Minute)
			holdTimeWait(t, p.mon.stack, time.Minute)
			const lookups = 200
			addr := netip.AddrPortFrom(p.mon.face("pay-1"), p.w.epmdPort)
			for i := range lookups {
				r, err := portPlease(t, addr, tc.node)
				if err != nil || r.OK() != tc.ok {
					t.Fatalf("lookup %d of %q: %+v, %v", i, tc.node, r, err)
				}
			}
			// Every lookup is over when its endpoints are closed or in
			// TIME-WAIT on both stacks.
			var asking, answering epmdEndpoints
			deadline := time.Now().Add(10 * time.Second)
			for {
				asking = countEPMDEndpoints(p.mon.stack, p.w.epmdPort)
				answering = countEPMDEndpoints(p.pay.stack, p.w.epmdPort)
				if asking.open == 0 && answering.open == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("EPMD connections still open: asking %+v, answering %+v", asking, answering)
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("after %d lookups: TIME-WAIT on mon-1 (asking) %d, on pay-1 (answering) %d",
				lookups, asking.timeWait, answering.timeWait)
			if answering.timeWait != 0 {
				t.Errorf("pay-1 (answering) holds %d EPMD connections in TIME-WAIT, want 0", answering.timeWait)
			}
			if asking.timeWait == 0 {
				t.Errorf("mon-1 (asking) holds no EPMD connection in TIME-WAIT, want the lookups it closed")
			}
		})
	}
}

// holdTimeWait sets how long s's closed connections stay in TIME-WAIT.
func holdTimeWait(t *testing.T, s *Stack, d time.Duration) {
	t.Helper()
	opt := tcpip.TCPTimeWaitTimeoutOption(d)
	if terr := s.ip.SetTransportProtocolOption(tcp.ProtocolNumber, &opt); terr != nil {
		t.Fatalf("set TIME-WAIT: %s", terr)
	}
}

// epmdEndpoints counts a stack's TCP endpoints of EPMD connections: those
// in TIME-WAIT, and those not yet closed.
type epmdEndpoints struct{ timeWait, open int }

// countEPMDEndpoints counts the endpoints s's demultiplexer holds (those a
// SYN would meet) whose local or remote port is port.
func countEPMDEndpoints(s *Stack, port uint16) epmdEndpoints {
	var c epmdEndpoints
	for _, ep := range s.ip.RegisteredEndpoints() {
		tep, ok := ep.(*tcp.Endpoint)
		if !ok {
			continue
		}
		id := tep.Info().(*stack.TransportEndpointInfo).ID
		if id.LocalPort != port && id.RemotePort != port {
			continue
		}
		switch tep.EndpointState() {
		case tcp.StateTimeWait:
			c.timeWait++
		case tcp.StateClose, tcp.StateError:
		default:
			c.open++
		}
	}
	return c
}
