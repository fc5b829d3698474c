package rxlimit

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// fakeBind hands out the datagrams queued in next, one batch per receive.
type fakeBind struct {
	conn.Bind // nil: only the methods below are called
	mu        sync.Mutex
	next      [][][]byte
	closed    chan struct{}
}

func (b *fakeBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.closed = make(chan struct{})
	return []conn.ReceiveFunc{b.receive}, 51820, nil
}

func (b *fakeBind) receive(bufs [][]byte, sizes []int, _ []conn.Endpoint) (int, error) {
	select {
	case <-b.closed:
		return 0, net.ErrClosed
	default:
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.next) == 0 {
		return 0, nil
	}
	batch := b.next[0]
	b.next = b.next[1:]
	for i, p := range batch {
		sizes[i] = copy(bufs[i], p)
	}
	return len(batch), nil
}

func (b *fakeBind) queue(batch ...[]byte) {
	b.mu.Lock()
	b.next = append(b.next, batch)
	b.mu.Unlock()
}

func (b *fakeBind) Close() error                                { close(b.closed); return nil }
func (b *fakeBind) Send([][]byte, conn.Endpoint) error          { return nil }
func (b *fakeBind) BatchSize() int                              { return 4 }
func (b *fakeBind) ParseEndpoint(string) (conn.Endpoint, error) { return nil, nil }

type fakeTUN struct{ tun.Device }

func (fakeTUN) Write(bufs [][]byte, _ int) (int, error) { return len(bufs), nil }

func handshake(typ uint32, size int, sender uint32) []byte {
	p := make([]byte, size)
	binary.LittleEndian.PutUint32(p, typ)
	binary.LittleEndian.PutUint32(p[4:], sender)
	return p
}

func data(receiver uint32, payload int) []byte {
	p := make([]byte, device.MessageKeepaliveSize+payload)
	binary.LittleEndian.PutUint32(p, device.MessageTransportType)
	binary.LittleEndian.PutUint32(p[device.MessageTransportOffsetReceiver:], receiver)
	return p
}

func setup(t *testing.T, max int) (*Limiter, *fakeBind, conn.Bind, conn.ReceiveFunc, tun.Device) {
	t.Helper()
	l := New(max)
	fb := &fakeBind{}
	b := l.Bind(fb)
	fns, _, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	// This host answered a handshake with session index 7.
	if err := b.Send([][]byte{handshake(device.MessageResponseType, device.MessageResponseSize, 7)}, nil); err != nil {
		t.Fatal(err)
	}
	return l, fb, b, fns[0], l.TUN(fakeTUN{})
}

func bufs(n int) ([][]byte, []int, []conn.Endpoint) {
	b := make([][]byte, n)
	for i := range b {
		b[i] = make([]byte, 2048)
	}
	return b, make([]int, n), make([]conn.Endpoint, n)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Only data packets for a session index this host sent are held: not
// keepalives, not handshakes, not packets for an unknown index.
func TestCountsOnlyDataForOwnIndices(t *testing.T) {
	l, fb, _, recv, _ := setup(t, 64)
	fb.queue(data(7, 100), data(7, 1), data(9, 100), data(7, 0), handshake(device.MessageInitiationType, device.MessageInitiationSize, 7))
	b, sizes, eps := bufs(8)
	if n, err := recv(b, sizes, eps); err != nil || n != 5 {
		t.Fatalf("receive: %d, %v", n, err)
	}
	if got := l.Stats().Held; got != 2 {
		t.Fatalf("held %d, want 2", got)
	}
}

// A receive waits while the held packets and a new batch would pass the
// bound, and goes on when the TUN takes some.
func TestReceiveWaitsForWrites(t *testing.T) {
	l, fb, _, recv, tunDev := setup(t, 4)
	fb.queue(data(7, 100), data(7, 100))
	b, sizes, eps := bufs(2)
	if _, err := recv(b, sizes, eps); err != nil { // 2 held
		t.Fatal(err)
	}
	fb.queue(data(7, 100))
	if _, err := recv(b, sizes, eps); err != nil { // 2 held, 2 more fit: 3 held
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := recv(b, sizes, eps); done <- err }()
	waitFor(t, "the receive to wait", func() bool { return l.Stats().Waits == 1 })
	if _, err := tunDev.Write(make([][]byte, 1), 0); err != nil { // 2 held: a batch of 2 fits
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Resets != 0 || st.Held != 2 {
		t.Fatalf("after the write: %+v, want 2 held and no reset", st)
	}
}

// Packets counted but never written (dropped inside wireguard-go) stop
// blocking the receive after StallReset.
func TestStallResets(t *testing.T) {
	l, fb, _, recv, _ := setup(t, 2)
	fb.queue(data(7, 100), data(7, 100))
	b, sizes, eps := bufs(2)
	if _, err := recv(b, sizes, eps); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if _, err := recv(b, sizes, eps); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Resets != 1 || st.Held != 0 {
		t.Fatalf("%+v after %v, want one reset", st, time.Since(began))
	}
}

// Close ends a waiting receive, which then reports the close.
func TestCloseEndsWait(t *testing.T) {
	l, fb, bd, recv, _ := setup(t, 2)
	fb.queue(data(7, 100), data(7, 100))
	b, sizes, eps := bufs(2)
	if _, err := recv(b, sizes, eps); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := recv(b, sizes, eps); done <- err }()
	waitFor(t, "the receive to wait", func() bool { return l.Stats().Waits == 1 })
	if err := bd.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("receive after Close: %v, want net.ErrClosed", err)
	}
	if l.Stats().Resets != 0 {
		t.Fatal("Close ended the wait by a reset, not by closing")
	}
}
