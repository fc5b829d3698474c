package netstack

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nodewire/nodewire/netstack/erldist"
)

// unregister forgets name, as epmd does when its node stops.
func (e *fakeEPMD) unregister(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.names, name)
}

// portPleases counts the PORT_PLEASE2 requests e has served.
func (e *fakeEPMD) portPleases() int {
	n := 0
	for _, tag := range e.seen() {
		if tag == erldist.TagPortPlease2Req {
			n++
		}
	}
	return n
}

// TestEPMDCache: a repeated lookup is answered from the cache, and a
// cached port that went stale (the node restarted elsewhere, or stopped)
// never leads a connection to the wrong place: it reaches the node's new
// port, or is reset.
func TestEPMDCache(t *testing.T) {
	p := newPair(t, "pipe", erlangRule)
	paySelf := p.pay.face("pay-1")
	payOnMon := p.mon.face("pay-1")
	epmdAddr := netip.AddrPortFrom(payOnMon, p.w.epmdPort)
	echo := func(c *net.TCPConn) { io.Copy(c, c); c.CloseWrite() }
	firstLn := serveTCP(t, netip.AddrPortFrom(paySelf, 0), echo)
	first := uint16(firstLn.Addr().(*net.TCPAddr).Port)
	p.pay.epmd.register("app", first)

	lookup := func(t *testing.T) erldist.Port2Resp {
		t.Helper()
		r, err := portPlease(t, epmdAddr, "app")
		if err != nil {
			t.Fatalf("PORT_PLEASE2: %v", err)
		}
		return r
	}
	// awaitChecks waits until pay-1's epmd has served n lookups: a cached
	// answer's check reaches it after the answer, when a connection needs
	// it (here the "nodes" are echo servers, which never name themselves).
	awaitChecks := func(t *testing.T, n int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for p.pay.epmd.portPleases() < n {
			if ctx.Err() != nil {
				t.Fatalf("pay-1's epmd served %d lookups, want %d", p.pay.epmd.portPleases(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	dial := func(t *testing.T, port uint16) net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(payOnMon, port).String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("repeated lookup answered from the cache and checked", func(t *testing.T) {
		if r := lookup(t); !r.OK() || r.Port != first {
			t.Fatalf("first lookup: %+v, want port %d", r, first)
		}
		n := p.pay.epmd.portPleases()
		if r := lookup(t); !r.OK() || r.Port != first {
			t.Fatalf("cached lookup: %+v, want port %d", r, first)
		}
		distHello(t, dial(t, first), "app@mon-1")
		awaitChecks(t, n+1)
	})

	t.Run("restarted node: the stale port's connection reaches the new one", func(t *testing.T) {
		firstLn.Close() // the node stops...
		second := startEcho(t, netip.AddrPortFrom(paySelf, 0))
		p.pay.epmd.register("app", second) // ...and comes back elsewhere
		n := p.pay.epmd.portPleases()
		if r := lookup(t); !r.OK() || r.Port != first {
			t.Fatalf("cached lookup: %+v, want the cached port %d", r, first)
		}
		distHello(t, dial(t, first), "app@mon-1") // carried to second
		awaitChecks(t, n+1)
		if r := lookup(t); !r.OK() || r.Port != second {
			t.Fatalf("lookup after the check: %+v, want port %d", r, second)
		}
		distHello(t, dial(t, second), "app@mon-1")
	})

	t.Run("stopped node: the stale port's connection is reset", func(t *testing.T) {
		p.pay.epmd.unregister("app")
		r := lookup(t)
		if !r.OK() {
			t.Fatalf("cached lookup: %+v, want the cached answer", r)
		}
		c := dial(t, r.Port)
		c.Write(erldist.AppendSendName(nil, "app@mon-1"))
		if err := readErrSoon(c, 10*time.Second); !isRefused(err) {
			t.Fatalf("read on a connection to a stopped node: %v, want it closed at once", err)
		}
		if r := lookup(t); r.OK() {
			t.Fatalf("lookup after the check: %+v, want not found", r)
		}
	})

	t.Run("another node took the cached port: the handshake still reaches the node asked for", func(t *testing.T) {
		thirdLn := serveTCP(t, netip.AddrPortFrom(paySelf, 0), echo)
		third := uint16(thirdLn.Addr().(*net.TCPAddr).Port)
		p.pay.epmd.register("app", third)
		if r := lookup(t); !r.OK() || r.Port != third {
			t.Fatalf("lookup: %+v, want port %d", r, third)
		}
		thirdLn.Close()
		fourth := startEcho(t, netip.AddrPortFrom(paySelf, 0))
		p.pay.epmd.register("app", fourth)
		// Another node listens on the old port, and answers at once.
		serveTCP(t, netip.AddrPortFrom(paySelf, third), func(c *net.TCPConn) {
			c.Write([]byte("impostor"))
			io.Copy(io.Discard, c)
		})
		p.pay.epmd.register("other", third)
		if r := lookup(t); !r.OK() || r.Port != third {
			t.Fatalf("cached lookup: %+v, want the cached port %d", r, third)
		}
		distHello(t, dial(t, third), "app@mon-1") // the echo, from fourth
	})

	// nodeNamed answers send_name as a node named name does (ok status,
	// challenge), then echoes.
	nodeNamed := func(name string) func(c *net.TCPConn) {
		return func(c *net.TCPConn) {
			var buf [erldist.MaxSendName + 2]byte
			if _, _, err := erldist.ReadSendName(c, buf[:]); err != nil {
				return
			}
			c.Write(erldist.AppendReply(nil, name))
			io.Copy(c, c)
		}
	}
	// handshake sends send_name on a dial to port and returns the reply's
	// node name.
	handshake := func(t *testing.T, port uint16) string {
		t.Helper()
		c := dial(t, port)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(erldist.AppendSendName(nil, "app@mon-1")); err != nil {
			t.Fatal(err)
		}
		want := len(erldist.AppendReply(nil, "named@pay-1"))
		got := make([]byte, want)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("handshake reply: %v", err)
		}
		name, n, err := erldist.ReplyNode(got)
		if err != nil || n != want {
			t.Fatalf("handshake reply %x: %v", got, err)
		}
		c.Write([]byte("x"))
		if _, err := io.ReadFull(c, got[:1]); err != nil || got[0] != 'x' {
			t.Fatalf("after the handshake: %q, %v", got[:1], err)
		}
		return string(name)
	}
	namedLn := serveTCP(t, netip.AddrPortFrom(paySelf, 0), nodeNamed("named@pay-1"))
	named := uint16(namedLn.Addr().(*net.TCPAddr).Port)
	p.pay.epmd.register("named", named)

	t.Run("a node that names itself settles the connection with no check", func(t *testing.T) {
		if r, err := portPlease(t, epmdAddr, "named"); err != nil || r.Port != named {
			t.Fatalf("first lookup: %+v %v, want port %d", r, err, named)
		}
		n := p.pay.epmd.portPleases()
		if r, err := portPlease(t, epmdAddr, "named"); err != nil || r.Port != named {
			t.Fatalf("cached lookup: %+v %v, want port %d", r, err, named)
		}
		if got := handshake(t, named); got != "named@pay-1" {
			t.Fatalf("reached %s", got)
		}
		if got := p.pay.epmd.portPleases(); got != n {
			t.Fatalf("pay-1's epmd served %d lookups, want %d (no check)", got, n)
		}
	})

	t.Run("another node on the cached port names itself: the handshake still reaches the node asked for", func(t *testing.T) {
		namedLn.Close()
		moved := serveTCP(t, netip.AddrPortFrom(paySelf, 0), nodeNamed("named@pay-1"))
		p.pay.epmd.register("named", uint16(moved.Addr().(*net.TCPAddr).Port))
		serveTCP(t, netip.AddrPortFrom(paySelf, named), nodeNamed("other@pay-1"))
		p.pay.epmd.register("other", named)
		if r, err := portPlease(t, epmdAddr, "named"); err != nil || r.Port != named {
			t.Fatalf("cached lookup: %+v %v, want the cached port %d", r, err, named)
		}
		if got := handshake(t, named); got != "named@pay-1" {
			t.Fatalf("reached %s, want named@pay-1 at its new port", got)
		}
	})
}
