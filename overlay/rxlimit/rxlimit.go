// Package rxlimit bounds how many received packets wireguard-go holds
// between reading them from the UDP socket and writing them to the TUN
// device.
//
// wireguard-go reads datagrams as fast as the socket gives them, each into a
// 64 KiB buffer (device.MaxMessageSize), and queues them for decryption with
// no bound but its channels (1024 batches of up to 128). Its pool limit,
// device.PreallocatedBuffersPerPool, is a constant (0: unbounded) in the
// version in go.mod, so it cannot be set without patching. When decryption
// and the TUN write fall behind the sender, as on a busy host in TUN mode,
// the queue grows to the sender's TCP window: 2,000 buffers, 131 MiB of a
// receiving overlayd's 166 MiB VmRSS in `make bench`; a WAN link's window
// is larger still. In userspace mode the stack copies each packet out as
// it is written, so the buffers come back at once.
//
// A Limiter wraps the Bind and the TUN device. The Bind's receive waits
// while one more batch would take the packets held (read, not yet written
// to the TUN) past the bound, so the excess waits in the socket's receive buffer instead: in the kernel, at
// about 2 KiB a packet, and dropped when that is full, which the sender's
// TCP answers like any full queue. Only data packets for one of this host's
// session indices (learned from the handshake messages it sends) are
// counted, so junk from strangers cannot use up the allowance; a packet
// wireguard-go drops for another reason (replayed, failed to decrypt, its
// peer removed) is never written, so when nothing is written for
// StallReset while the receive waits, the count starts over.
package rxlimit

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// StallReset is how long a waiting receive lets pass with nothing written to
// the TUN device before it takes the held count for packets dropped inside
// wireguard-go and starts over. Decrypting and writing a batch takes well
// under a millisecond; a busy host may not run the workers for some.
const StallReset = 50 * time.Millisecond

// indexLifetime is how long a session index learned from a handshake
// message counts: a keypair is rejected after device.RejectAfterTime (180 s).
const indexLifetime = device.RejectAfterTime + 30*time.Second

// Limiter counts the packets held between the Bind and the TUN device of
// one wireguard-go device. Make it with New and hand Bind(...) and TUN(...)
// to device.NewDevice.
type Limiter struct {
	max      int64
	held     atomic.Int64
	progress chan struct{} // a token after each TUN write, for a waiting receive
	waits    atomic.Uint64
	resets   atomic.Uint64

	mu      sync.Mutex
	indices map[uint32]time.Time // this host's session indices, when last sent
	pruned  time.Time
}

// New returns a Limiter that lets at most max packets be held. A receive
// reads a whole batch (conn.IdealBatchSize) or waits, so max should be a
// few batches.
func New(max int) *Limiter {
	return &Limiter{max: int64(max), progress: make(chan struct{}, 1), indices: make(map[uint32]time.Time)}
}

// Stats are a Limiter's counters.
type Stats struct {
	Held   int64  // packets read and not yet written
	Waits  uint64 // receives that waited for room
	Resets uint64 // counts started over after StallReset without a write
}

// Stats returns the current counters.
func (l *Limiter) Stats() Stats {
	return Stats{Held: max(l.held.Load(), 0), Waits: l.waits.Load(), Resets: l.resets.Load()}
}

// Bind wraps b: its receive functions wait for room, its Send learns this
// host's session indices.
func (l *Limiter) Bind(b conn.Bind) conn.Bind { return &bind{Bind: b, l: l} }

// TUN wraps d: each Write frees room for as many packets as it was given.
func (l *Limiter) TUN(d tun.Device) tun.Device { return &tunDevice{Device: d, l: l} }

// wait returns once a batch of n more packets fits, or when done closes.
func (l *Limiter) wait(n int, done <-chan struct{}) {
	limit := max(l.max-int64(n), 0)
	if l.held.Load() <= limit {
		return
	}
	l.waits.Add(1)
	timer := time.NewTimer(StallReset)
	defer timer.Stop()
	for l.held.Load() > limit {
		select {
		case <-l.progress:
			timer.Reset(StallReset)
		case <-timer.C:
			// Nothing written for StallReset: what is counted was
			// dropped inside wireguard-go.
			l.held.Store(0)
			l.resets.Add(1)
			return
		case <-done:
			return
		}
	}
}

// written frees room for n packets.
func (l *Limiter) written(n int) {
	if l.held.Add(-int64(n)) < 0 {
		// A reset counted packets still on their way as dropped.
		for v := l.held.Load(); v < 0 && !l.held.CompareAndSwap(v, 0); v = l.held.Load() {
		}
	}
	select {
	case l.progress <- struct{}{}:
	default:
	}
}

// count adds the data packets among the first n received datagrams that
// carry one of this host's session indices.
func (l *Limiter) count(bufs [][]byte, sizes []int, n int) {
	var held int64
	l.mu.Lock()
	for i := range n {
		p := bufs[i][:sizes[i]]
		// A keepalive (empty payload) is never written to the TUN.
		if len(p) <= device.MessageKeepaliveSize || binary.LittleEndian.Uint32(p) != device.MessageTransportType {
			continue
		}
		if _, ok := l.indices[binary.LittleEndian.Uint32(p[device.MessageTransportOffsetReceiver:])]; ok {
			held++
		}
	}
	l.mu.Unlock()
	if held > 0 {
		l.held.Add(held)
	}
}

// learn notes the sender index of the handshake messages among bufs: the
// index data packets to this host will carry.
func (l *Limiter) learn(bufs [][]byte) {
	for _, p := range bufs {
		if len(p) < 8 {
			continue
		}
		switch t := binary.LittleEndian.Uint32(p); {
		case t == device.MessageInitiationType && len(p) == device.MessageInitiationSize,
			t == device.MessageResponseType && len(p) == device.MessageResponseSize:
			now := time.Now()
			l.mu.Lock()
			l.indices[binary.LittleEndian.Uint32(p[4:])] = now
			if now.Sub(l.pruned) > indexLifetime/4 {
				for idx, at := range l.indices {
					if now.Sub(at) > indexLifetime {
						delete(l.indices, idx)
					}
				}
				l.pruned = now
			}
			l.mu.Unlock()
		}
	}
}

// bind is a Limiter's conn.Bind.
type bind struct {
	conn.Bind
	l *Limiter

	mu   sync.Mutex
	done chan struct{} // closed by Close: waiting receives go on to see the close
}

func (b *bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.Bind.Open(port)
	if err != nil {
		return nil, 0, err
	}
	done := make(chan struct{})
	b.mu.Lock()
	b.done = done
	b.mu.Unlock()
	out := make([]conn.ReceiveFunc, len(fns))
	for i, recv := range fns {
		out[i] = func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			b.l.wait(len(bufs), done)
			n, err := recv(bufs, sizes, eps)
			if n > 0 {
				b.l.count(bufs, sizes, n)
			}
			return n, err
		}
	}
	return out, actual, nil
}

// Close closes the socket first and only then releases waiting receives,
// so that a released receive meets the closed socket (net.ErrClosed) and
// never a socket still open.
func (b *bind) Close() error {
	err := b.Bind.Close()
	b.mu.Lock()
	if b.done != nil {
		close(b.done)
		b.done = nil
	}
	b.mu.Unlock()
	return err
}

func (b *bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	b.l.learn(bufs)
	return b.Bind.Send(bufs, ep)
}

// tunDevice is a Limiter's tun.Device.
type tunDevice struct {
	tun.Device
	l *Limiter
}

func (d *tunDevice) Write(bufs [][]byte, offset int) (int, error) {
	n, err := d.Device.Write(bufs, offset)
	d.l.written(len(bufs))
	return n, err
}
