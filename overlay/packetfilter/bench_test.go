package packetfilter

import (
	"log/slog"
	"testing"

	"github.com/nodewire/nodewire/peers"
)

// BenchmarkEstablished is the steady state: batches of data packets of
// known flows, both ways. It must not allocate.
func BenchmarkEstablished(b *testing.B) {
	snap := loadSnap(b, "testdata/peers.yaml", nil)
	dev := &nullTUN{}
	f := New(dev, Config{Logger: slog.New(slog.DiscardHandler)}, snap)
	const off = 16
	payload := make([]byte, 1380)
	// Open a flow pay-2 -> pay-1:4369, then measure its data packets.
	setup := []struct {
		dir peers.Direction
		pkt []byte
	}{
		{peers.Inbound, tcp(pay2, 40000, pay1, 4369, syn, 1, 0)},
		{peers.Outbound, tcp(pay1, 4369, pay2, 40000, synack, 9, 2)},
	}
	for _, s := range setup {
		if f.check(snap, s.pkt, s.dir, f.now()) != pass {
			b.Fatal("setup packet refused")
		}
	}
	const batch = 64
	inPkt := tcp(pay2, 40000, pay1, 4369, ack, 2, 10, payload...)
	outPkt := tcp(pay1, 4369, pay2, 40000, ack, 10, 2, payload...)
	inBufs := make([][]byte, batch)
	work := make([][]byte, batch)
	outBufs := make([][]byte, batch)
	sizes := make([]int, batch)
	for i := range inBufs {
		inBufs[i] = append(make([]byte, off), inPkt...)
		outBufs[i] = make([]byte, off+len(outPkt))
	}
	dev.read = outPkt
	b.SetBytes(int64(2 * batch * len(inPkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(work, inBufs)
		if _, err := f.Write(work, off); err != nil {
			b.Fatal(err)
		}
		n, _ := f.Read(outBufs, sizes, off)
		if n != batch || sizes[0] == 0 || dev.wrote != batch {
			b.Fatalf("packets refused: read %d (size %d), wrote %d", n, sizes[0], dev.wrote)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2*batch), "ns/packet")
}

// nullTUN is a kernel that takes every packet and always has a full batch
// of one packet to read.
type nullTUN struct {
	fakeTUN
	read  []byte
	wrote int
}

func (d *nullTUN) Write(bufs [][]byte, offset int) (int, error) {
	d.wrote = len(bufs)
	return len(bufs), nil
}

func (d *nullTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for i := range bufs {
		sizes[i] = copy(bufs[i][offset:], d.read)
	}
	return len(bufs), nil
}
