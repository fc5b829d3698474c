package netstack

import (
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// TestPredial: a node's port is dialled through the overlay as soon as its
// lookup is answered, the node's own dial then takes that connection, and
// one that nobody takes is closed after predialKeep, before a byte, without
// a refusal at the far end.
func TestPredial(t *testing.T) {
	p := newPair(t, "pipe", erlangRule)
	paySelf := p.pay.face("pay-1")
	payOnMon := p.mon.face("pay-1")
	epmdAddr := netip.AddrPortFrom(payOnMon, p.w.epmdPort)
	var accepted atomic.Int32
	carried := make(chan int64, 8) // bytes each ended connection carried
	ln := serveTCP(t, netip.AddrPortFrom(paySelf, 0), func(c *net.TCPConn) {
		accepted.Add(1)
		n, _ := io.Copy(c, c)
		c.CloseWrite()
		carried <- n
	})
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	p.pay.epmd.register("app", port)
	lookup := func(t *testing.T) {
		t.Helper()
		if r, err := portPlease(t, epmdAddr, "app"); err != nil || !r.OK() || r.Port != port {
			t.Fatalf("PORT_PLEASE2: %+v, %v; want port %d", r, err, port)
		}
	}

	t.Run("the answer dials the port ahead and the node's dial takes it", func(t *testing.T) {
		lookup(t)
		waitFor(t, 10*time.Second, "pay-1's node to be dialled ahead", func() bool { return accepted.Load() == 1 })
		c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(payOnMon, port).String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		distHello(t, c, "app@mon-1")
		c.Close()
		if n := <-carried; n == 0 {
			t.Fatalf("the connection dialled ahead carried nothing; the node's dial made another")
		}
		if got := accepted.Load(); got != 1 {
			t.Fatalf("pay-1's node accepted %d connections, want 1", got)
		}
	})

	t.Run("a dial ahead nobody takes closes without a refusal", func(t *testing.T) {
		denied := p.pay.stack.Stats()["mon-1"].DeniedIn
		lookup(t) // from the cache this time
		waitFor(t, 10*time.Second, "pay-1's node to be dialled ahead", func() bool { return accepted.Load() == 2 })
		select {
		case n := <-carried:
			if n != 0 {
				t.Fatalf("the unused connection carried %d bytes", n)
			}
		case <-time.After(predialKeep + 10*time.Second):
			t.Fatalf("the unused connection was not closed within %v", predialKeep+10*time.Second)
		}
		if got := p.pay.stack.Stats()["mon-1"].DeniedIn; got != denied {
			t.Fatalf("pay-1 counted %d refusals from mon-1, want %d", got, denied)
		}
	})
}
