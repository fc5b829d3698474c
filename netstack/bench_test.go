package netstack

import (
	"io"
	"net"
	"net/netip"
	"testing"
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
	for _, link := range []string{"pipe", "wireguard"} {
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
