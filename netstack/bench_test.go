package netstack

import (
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// startSink listens on addr and discards everything each connection sends,
// reporting the byte count when the sender half-closes.
func startSink(tb testing.TB, addr netip.AddrPort) <-chan int64 {
	tb.Helper()
	counts := make(chan int64, 16)
	serveTCP(tb, addr, func(c *net.TCPConn) {
		n, _ := io.Copy(io.Discard, c)
		counts <- n
	})
	return counts
}

// BenchmarkOverlayStream measures one TCP stream from a local client on
// mon-1, through pay-1's face, both gVisor stacks and the link, to a sink
// on pay-1's self face: 1 MiB per op, at the default MTU.
func BenchmarkOverlayStream(b *testing.B) {
	for _, link := range []string{"pipe", "wireguard", "wireguard-udpbind"} {
		b.Run(link, func(b *testing.B) {
			p := newPair(b, link, erlangRule)
			counts := startSink(b, netip.AddrPortFrom(p.pay.face("pay-1"), p.w.exposePort))
			c, err := net.Dial("tcp4", netip.AddrPortFrom(p.mon.face("pay-1"), p.w.exposePort).String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			chunk := make([]byte, 1<<20)
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			c.(*net.TCPConn).CloseWrite()
			n := <-counts
			b.StopTimer()
			if n != int64(b.N)*int64(len(chunk)) {
				b.Fatalf("sink got %d bytes, want %d", n, int64(b.N)*int64(len(chunk)))
			}
		})
	}
}

// BenchmarkOverlayPingPong measures the round trip of a 64-byte message to
// an echo service on pay-1, from a client on mon-1 through the overlay, next
// to the same exchange over plain loopback TCP (the baseline of the run).
func BenchmarkOverlayPingPong(b *testing.B) {
	pingPong := func(b *testing.B, addr netip.AddrPort) {
		c, err := net.Dial("tcp4", addr.String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		msg := make([]byte, 64)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, msg); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("loopback", func(b *testing.B) {
		port := startEcho(b, netip.MustParseAddrPort("127.0.0.1:0"))
		pingPong(b, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port))
	})
	for _, link := range []string{"pipe", "wireguard", "wireguard-udpbind"} {
		b.Run(link, func(b *testing.B) {
			p := newPair(b, link, erlangRule)
			startEcho(b, netip.AddrPortFrom(p.pay.face("pay-1"), p.w.exposePort))
			pingPong(b, netip.AddrPortFrom(p.mon.face("pay-1"), p.w.exposePort))
		})
	}
}

// BenchmarkEPMDLookup measures a whole PORT_PLEASE2 exchange (connect,
// request, reply, close), as a node does before its first connection to
// another: to the local epmd directly (the baseline of the run), and from
// mon-1 to pay-1's epmd through the filter relays of both stacks.
//
// slow/1k is how many lookups in a thousand took over slowLookup: a SYN
// that met a TIME-WAIT it could not pass waits for its retransmission
// (about a second), which the mean hides.
func BenchmarkEPMDLookup(b *testing.B) {
	const slowLookup = 500 * time.Millisecond
	lookup := func(b *testing.B, addr netip.AddrPort) {
		b.ReportAllocs()
		slow, n := 0, 0
		for b.Loop() {
			start := time.Now()
			r, err := portPlease(b, addr, "app")
			if err != nil || !r.OK() {
				b.Fatalf("PORT_PLEASE2: %+v, %v", r, err)
			}
			if time.Since(start) > slowLookup {
				slow++
			}
			n++
		}
		b.ReportMetric(1000*float64(slow)/float64(n), "slow/1k")
	}
	for _, link := range []string{"local", "pipe", "wireguard"} {
		b.Run(link, func(b *testing.B) {
			wire, client := link, "mon-1"
			if link == "local" { // pay-1 asks its own epmd: no overlay
				wire, client = "pipe", "pay-1"
			}
			p := newPair(b, wire, erlangRule)
			p.pay.epmd.register("app", 4370)
			from := p.mon
			if client == "pay-1" {
				from = p.pay
			}
			lookup(b, netip.AddrPortFrom(from.face("pay-1"), p.w.epmdPort))
		})
	}
}

// BenchmarkColdDial measures a cold connection through the overlay: a local
// dial to pay-1's face on mon-1, the overlay handshake, pay-1's dial to
// the echo service, one byte there and back, and the close. Besides the
// time it reports the process's CPU time per connection (user and system),
// which a shared machine distorts less.
func BenchmarkColdDial(b *testing.B) {
	p := newPair(b, "pipe", erlangRule)
	startEcho(b, netip.AddrPortFrom(p.pay.face("pay-1"), p.w.exposePort))
	addr := netip.AddrPortFrom(p.mon.face("pay-1"), p.w.exposePort).String()
	msg := make([]byte, 1)
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	b.ResetTimer()
	for range b.N {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, msg); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano()
	b.ReportMetric(float64(cpu)/1e3/float64(b.N), "cpu-µs/op")
}
