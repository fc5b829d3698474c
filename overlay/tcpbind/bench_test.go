package tcpbind

import (
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/nodewire/nodewire/overlay/udpbind"
)

// BenchmarkStream is the TCP transport's own ceiling on this machine:
// batches of 64 full-size data messages over TLS on loopback, from Send to
// the receiver's ReceiveFunc (WireGuard's encryption not included).
func BenchmarkStream(b *testing.B) {
	newBind := func(listen string) (*Bind, []conn.ReceiveFunc) {
		bb, err := New(udpbind.New(), Config{Listen: listen})
		if err != nil {
			b.Fatal(err)
		}
		fns, _, err := bb.Open(0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { bb.Close() })
		return bb, fns
	}
	rx, fns := newBind("127.0.0.1:0")
	tx, _ := newBind("")
	ep, err := tx.ParseEndpoint(TCPPrefix + rx.ListenAddr().String())
	if err != nil {
		b.Fatal(err)
	}
	const batch, size = 64, 1420
	msgs := make([][]byte, batch)
	for i := range msgs {
		msgs[i] = message(msgData, size)
	}
	got := make(chan int, 1024)
	tcpRecv := fns[len(fns)-1]
	go func() {
		bufs := make([][]byte, rx.BatchSize())
		for i := range bufs {
			bufs[i] = make([]byte, maxMessage)
		}
		sizes := make([]int, len(bufs))
		eps := make([]conn.Endpoint, len(bufs))
		answered := false
		for {
			n, err := tcpRecv(bufs, sizes, eps)
			if err != nil {
				return
			}
			if !answered {
				// As the device would after a valid handshake: the
				// stream is no longer pending.
				rx.Send([][]byte{message(msgResponse, sizeResponse)}, eps[0])
				answered = true
			}
			got <- n
		}
	}()
	// Connect: the first send dials; wait until a message arrives.
	deadline := time.Now().Add(5 * time.Second)
	for connected := false; !connected; {
		tx.Send(msgs[:1], ep)
		select {
		case <-got:
			connected = true
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				b.Fatal("no stream")
			}
		}
	}
	b.SetBytes(batch * size)
	b.ReportAllocs()
	b.ResetTimer()
	want := b.N * batch
	go func() {
		for range b.N {
			if err := tx.Send(msgs, ep); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	for n := 0; n < want; {
		select {
		case k := <-got:
			n += k
		case <-time.After(10 * time.Second):
			b.Fatalf("received %d of %d messages", n, want)
		}
	}
}
