package netstack

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// DefaultMTU is the inner MTU: safe for WireGuard over IPv4 or IPv6 UDP on
// the internet.
const DefaultMTU = 1420

// tunBatch is how many packets one Read may return. wireguard-go sizes its
// read buffers by the larger of the bind's and the TUN's batch, so the
// stack's outbound queue can be drained in bursts instead of one hand-off
// per packet.
const tunBatch = 64

// TUN is a wireguard-go tun.Device whose other end is a gVisor stack instead
// of a kernel interface: packets WireGuard decrypts are injected into the
// stack, and packets the stack sends are read by WireGuard to encrypt.
type TUN struct {
	link   *link
	seg    *segmenter            // used by Read only: wireguard-go has one reader
	admit  func(pkt []byte) bool // inbound filter (Stack.admit); nil admits all
	mtu    int
	events chan tun.Event

	ctx    context.Context // done when the device is closed; unblocks Read
	cancel context.CancelFunc
	closed atomic.Bool
	once   sync.Once
}

var _ tun.Device = (*TUN)(nil)

// newTUN makes the device and the link endpoint the stack attaches to.
func newTUN(mtu int) *TUN {
	ctx, cancel := context.WithCancel(context.Background())
	t := &TUN{
		link:   newLink(mtu),
		seg:    newSegmenter(),
		mtu:    mtu,
		events: make(chan tun.Event, 1),
		ctx:    ctx,
		cancel: cancel,
	}
	t.events <- tun.EventUp
	return t
}

// File implements tun.Device: there is no file descriptor.
func (t *TUN) File() *os.File { return nil }

// Name implements tun.Device.
func (t *TUN) Name() (string, error) { return "nodewire", nil }

// MTU implements tun.Device.
func (t *TUN) MTU() (int, error) { return t.mtu, nil }

// Events implements tun.Device: one EventUp, closed on Close.
func (t *TUN) Events() <-chan tun.Event { return t.events }

// BatchSize implements tun.Device.
func (t *TUN) BatchSize() int { return tunBatch }

// Read implements tun.Device. It blocks for the first packet the stack
// sends, then takes whatever else is already queued, up to len(bufs),
// without waiting. TCP super-segments are cut into MTU-sized packets on the
// way (segmenter). Packets are copied straight from gVisor's buffers;
// nothing is allocated.
func (t *TUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if !t.seg.pending() && !t.wait() {
		return 0, os.ErrClosed
	}
	n := 0
	for n < len(bufs) {
		if t.seg.pending() {
			if size := t.seg.next(bufs[n][offset:]); size > 0 {
				sizes[n] = size
				n++
			}
			continue
		}
		pkt := t.link.pop()
		if pkt == nil {
			if n > 0 {
				break
			}
			// Everything popped was dropped or kept: wait again.
			if !t.wait() {
				return 0, os.ErrClosed
			}
			continue
		}
		if size := t.seg.take(bufs[n][offset:], pkt); size > 0 {
			sizes[n] = size
			n++
		}
	}
	return n, nil
}

// wait blocks until the stack has queued a packet. After Close it still
// reports the packets queued before (the resets Stack.Close sends), then
// false.
func (t *TUN) wait() bool {
	for {
		if t.link.queued() > 0 {
			return true
		}
		select {
		case <-t.link.ready:
		case <-t.ctx.Done():
			return t.link.queued() > 0
		}
	}
}

// copyPacket copies the whole packet (headers and payload) into dst.
func copyPacket(dst []byte, pkt *stack.PacketBuffer) (int, bool) {
	if pkt.Size() > len(dst) {
		return 0, false
	}
	views, off := pkt.AsViewList()
	n := 0
	for v := views.Front(); v != nil; v = v.Next() {
		s := v.AsSlice()
		if off >= len(s) {
			off -= len(s)
			continue
		}
		n += copy(dst[n:], s[off:])
		off = 0
	}
	return n, true
}

// Write implements tun.Device: each batch is coalesced (GRO) and handed to
// the stack, which copies the packets into its own pooled buffers. What the
// inbound filter refuses (Stack.admit) never reaches the stack.
func (t *TUN) Write(bufs [][]byte, offset int) (int, error) {
	if t.closed.Load() {
		return 0, os.ErrClosed
	}
	g := t.link.inbound()
	if g == nil {
		return len(bufs), nil // not attached: dropped, as on a link that is down
	}
	defer t.link.release(g)
	for i, b := range bufs {
		pkt := b[offset:]
		if len(pkt) == 0 || t.admit != nil && !t.admit(pkt) {
			continue
		}
		var proto = header.IPv4ProtocolNumber
		switch pkt[0] >> 4 {
		case 4:
		case 6:
			proto = header.IPv6ProtocolNumber // no IPv6 address: the stack drops it
		default:
			return i, syscall.EAFNOSUPPORT
		}
		pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
		pb.NetworkProtocolNumber = proto
		g.Enqueue(pb)
		pb.DecRef()
	}
	return len(bufs), nil
}

// flush waits, up to d, until the device's reader has taken every packet
// the stack queued so far. It reports whether the queue emptied.
func (t *TUN) flush(d time.Duration) bool {
	if t.link.queued() == 0 {
		return true
	}
	deadline := time.Now().Add(d)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for t.link.queued() > 0 {
		if t.closed.Load() || time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// Close implements tun.Device. It stops Read and Write; the stack behind it
// is closed by its owner (Stack.Close). Safe to call more than once.
func (t *TUN) Close() error {
	t.once.Do(func() {
		t.closed.Store(true)
		t.cancel()
		close(t.events)
	})
	return nil
}
