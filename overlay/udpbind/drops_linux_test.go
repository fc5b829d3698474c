package udpbind

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReceiveDrops overflows a socket's receive buffer (shrunk to the
// kernel's minimum, nothing reading) and checks that ReceiveDrops counts
// what the kernel dropped, and that a closed Bind reports 0.
func TestReceiveDrops(t *testing.T) {
	b := New().(*Bind)
	_, port := openBind(t, b)
	if n := b.ReceiveDrops(); n != 0 {
		t.Fatalf("fresh bind: %d drops", n)
	}
	so := b.socks.Load().v4
	if err := so.rc.Control(func(fd uintptr) {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 0); err != nil { // the kernel's minimum
			t.Error(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 1400)
	const sent = 200 // far more than a minimal buffer holds
	for range sent {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	// Loopback delivers in the sender's context, but poll rather than
	// assume it.
	deadline := time.Now().Add(5 * time.Second)
	var n uint64
	for n = b.ReceiveDrops(); n == 0 && time.Now().Before(deadline); n = b.ReceiveDrops() {
		time.Sleep(time.Millisecond)
	}
	if n == 0 || n > sent {
		t.Fatalf("ReceiveDrops = %d after %d datagrams into a minimal buffer; want 1..%d", n, sent, sent)
	}
	t.Logf("%d of %d datagrams dropped", n, sent)
	b.Close()
	if n := b.ReceiveDrops(); n != 0 {
		t.Fatalf("closed bind: %d drops", n)
	}
}
