package udpbind

import (
	"net/netip"
	"testing"

	"golang.zx2c4.com/wireguard/conn"
)

// BenchmarkBind sends a batch of packets from one Bind to another over
// loopback and receives them all, per op, for udpbind and wireguard-go's
// StdNetBind in the same run (the baseline). Packets of 1452 bytes are
// full WireGuard data packets at the default 1420 inner MTU; buffers have
// 64 KiB capacity as the device's do (StdNetBind's GSO copies into it).
func BenchmarkBind(b *testing.B) {
	binds := []struct {
		name string
		new  func() conn.Bind
	}{
		{"std", conn.NewStdNetBind},
		{"udpbind", New},
	}
	shapes := []struct {
		name  string
		sizes []int
	}{
		{"batch128x1452", repeat(conn.IdealBatchSize, 1452)},
		{"batch8x1452", repeat(8, 1452)},
		{"batch1x148", []int{148}},
		{"mixed16", []int{1452, 1452, 1452, 1452, 1452, 1452, 1452, 500, 148, 148, 1452, 1452, 1452, 1452, 1452, 92}},
	}
	for _, f := range families(b) {
		for _, sh := range shapes {
			for _, bd := range binds {
				b.Run(f.name+"/"+sh.name+"/"+bd.name, func(b *testing.B) {
					tx, rx := bd.new(), bd.new()
					openBind(b, tx)
					rfns, rport := openBind(b, rx)
					dst, err := tx.ParseEndpoint(netip.AddrPortFrom(f.lo, rport).String())
					if err != nil {
						b.Fatal(err)
					}
					c := newCollector(rfns[f.fn], rx.BatchSize())
					pkts := makePackets(sh.sizes)
					var bytes int
					for _, p := range pkts {
						bytes += len(p)
					}
					// StdNetBind's GSO appends into the first buffer of a
					// run; give it fresh lengths every op.
					send := make([][]byte, len(pkts))
					b.SetBytes(int64(bytes))
					b.ReportAllocs()
					b.ResetTimer()
					for range b.N {
						for i := range pkts {
							send[i] = pkts[i][:sh.sizes[i]]
						}
						if err := tx.Send(send, dst); err != nil {
							b.Fatal(err)
						}
						if err := c.count(len(pkts)); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					b.ReportMetric(float64(b.N*len(pkts))/b.Elapsed().Seconds(), "pkts/s")
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/pkt")
				})
			}
		}
	}
}
