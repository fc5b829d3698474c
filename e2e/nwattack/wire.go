package main

import (
	"container/heap"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// wire is a slow wire between two network interfaces (the ends of two veth
// pairs in a middle namespace): every Ethernet frame that arrives on one is
// sent out of the other after delay ± jitter, and with probability reorder
// a frame is held gap longer than its neighbours, so later frames overtake
// it. Unlike link it carries any protocol (TCP too), so every way of
// carrying distribution can cross the same impaired path. Loss is left to
// nftables (bridge family) on the way in: that keeps the two concerns
// apart and lets loss patterns (numgen inc) be exact. The one loss the
// wire does itself is an outage (-outage D -outage-every P): every frame
// either way is dropped for D at the start of every period P, as when a
// link flaps or a radio fades; nftables can count frames but not time.
//
// Jitter never reorders on its own: a frame leaves no earlier than the
// frame before it (a queue whose delay varies), since independent per-frame
// jitter at 100k frames/s would shuffle every frame, which no real path
// does. Reordering is what -reorder asks for, nothing else.
//
// Frames are read and written with a virtio-net header (PACKET_VNET_HDR) so
// checksum offload state passes through untouched. Frames longer than the
// interface MTU (GSO super-frames) are carried but counted as "gso": a
// harness that wants per-packet loss must see zero there.
//
// On SIGTERM or SIGINT it prints its counters as key=value words on one
// line and exits.
func wire(args []string) error {
	fs := flag.NewFlagSet("wire", flag.ExitOnError)
	aName := fs.String("a", "", "interface of the A side")
	bName := fs.String("b", "", "interface of the B side")
	delay := fs.Duration("delay", 0, "one-way delay")
	jitter := fs.Duration("jitter", 0, "delay varies uniformly within ± this")
	reorder := fs.Float64("reorder", 0, "probability a frame is held back by -gap (and overtaken)")
	gap := fs.Duration("gap", 2*time.Millisecond, "extra delay of a reordered frame")
	limit := fs.Int("limit", 100000, "frames queued per direction; more are tail-dropped")
	outage := fs.Duration("outage", 0, "drop every frame, both ways, for this long at the start of every -outage-every")
	outageEvery := fs.Duration("outage-every", time.Second, "the period of -outage")
	fs.Parse(args)
	if *aName == "" || *bName == "" {
		return errors.New("wire: -a and -b are required")
	}
	if *jitter > *delay {
		return fmt.Errorf("wire: -jitter %v larger than -delay %v", *jitter, *delay)
	}
	if *outage < 0 || *outage > 0 && *outage >= *outageEvery {
		return fmt.Errorf("wire: -outage %v: want 0 or shorter than -outage-every %v", *outage, *outageEvery)
	}
	fa, err := packetSocket(*aName)
	if err != nil {
		return err
	}
	fb, err := packetSocket(*bName)
	if err != nil {
		return err
	}
	im := impairment{delay: *delay, jitter: *jitter, reorder: *reorder, gap: *gap, limit: *limit,
		outage: *outage, outageEvery: *outageEvery, start: time.Now()}
	ab := newDirection(fa, fb, *bName, im)
	ba := newDirection(fb, fa, *aName, im)
	fmt.Printf("wire up a=%s b=%s delay=%v jitter=%v reorder=%v gap=%v outage=%v/%v\n", *aName, *bName, *delay, *jitter, *reorder, *gap, *outage, *outageEvery)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	errc := make(chan error, 2)
	go func() { errc <- ab.run() }()
	go func() { errc <- ba.run() }()
	select {
	case <-sigs:
	case err = <-errc:
	}
	// Frames the kernel dropped because the wire did not read them in
	// time: a link that loses frames by itself would bias every cell.
	var rxDrops uint64
	for _, fd := range []int{fa, fb} {
		if st, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			rxDrops += uint64(st.Drops)
		}
	}
	fmt.Printf("frames_ab=%d frames_ba=%d bytes_ab=%d bytes_ba=%d outage_ab=%d outage_ba=%d gso=%d reordered=%d tail_drops=%d write_errors=%d rx_drops=%d late=%d late_max_us=%d\n",
		ab.frames.Load(), ba.frames.Load(), ab.bytes.Load(), ba.bytes.Load(), ab.outageDrops.Load(), ba.outageDrops.Load(), ab.gso.Load()+ba.gso.Load(),
		ab.reordered.Load()+ba.reordered.Load(), ab.tailDrops.Load()+ba.tailDrops.Load(), ab.writeErrs.Load()+ba.writeErrs.Load(), rxDrops,
		ab.late.Load()+ba.late.Load(), max(ab.lateMax.Load(), ba.lateMax.Load())/1000)
	return err
}

// vnetHdrLen is sizeof(struct virtio_net_hdr).
const vnetHdrLen = 10

// packetSocket opens a raw packet socket bound to the interface, with
// virtio-net headers, that does not see its own transmissions.
func packetSocket(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return -1, fmt.Errorf("wire: %w", err)
	}
	proto := htons(unix.ETH_P_ALL)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return -1, fmt.Errorf("wire: packet socket: %w", err)
	}
	for _, o := range []struct {
		name string
		opt  int
	}{{"PACKET_VNET_HDR", unix.PACKET_VNET_HDR}, {"PACKET_IGNORE_OUTGOING", unix.PACKET_IGNORE_OUTGOING}} {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, o.opt, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("wire: %s on %s: %w", o.name, name, err)
		}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 16<<20)
	mr := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("wire: promiscuous %s: %w", name, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("wire: bind %s: %w", name, err)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// impairment is what a direction does to each frame.
type impairment struct {
	delay, jitter, gap time.Duration
	reorder            float64
	limit              int
	// outage drops every frame for outage at the start of every
	// outageEvery, counted from start (one clock for both directions).
	outage, outageEvery time.Duration
	start               time.Time
}

func (im impairment) none() bool { return im.delay == 0 && im.jitter == 0 && im.reorder == 0 }

// out says whether the link is down at now.
func (im impairment) out(now time.Time) bool {
	return im.outage > 0 && now.Sub(im.start)%im.outageEvery < im.outage
}

// direction carries frames from one socket to the other.
type direction struct {
	in, out int
	outName string
	im      impairment
	mtu     int // of the output interface, for the gso count

	mu   sync.Mutex
	q    frameHeap
	seq  uint64
	last time.Time // due time of the last in-order frame
	wake chan struct{}
	pool sync.Pool

	frames, bytes, gso, reordered, tailDrops, writeErrs atomic.Uint64
	outageDrops                                         atomic.Uint64 // frames dropped by -outage, not in frames
	// late counts frames sent more than lateThreshold after they were
	// due, lateMax is the worst lateness (ns): a wire starved of CPU adds
	// delay and jitter the cell did not ask for.
	late, lateMax atomic.Uint64
}

// lateThreshold is how late a frame may leave before it counts as late:
// well above timer and scheduling noise on an idle host.
const lateThreshold = 2 * time.Millisecond

func newDirection(in, out int, outName string, im impairment) *direction {
	d := &direction{in: in, out: out, outName: outName, im: im, wake: make(chan struct{}, 1)}
	d.pool.New = func() any { b := make([]byte, 65536+vnetHdrLen); return &b }
	if ifi, err := net.InterfaceByName(outName); err == nil {
		d.mtu = ifi.MTU
	}
	return d
}

func (d *direction) run() error {
	if !d.im.none() {
		go d.sender()
	}
	for {
		bp := d.pool.Get().(*[]byte)
		buf := *bp
		n, err := unix.Read(d.in, buf)
		if err != nil {
			if err == unix.EINTR || err == unix.EAGAIN {
				d.pool.Put(bp)
				continue
			}
			return fmt.Errorf("wire: read: %w", err)
		}
		if n <= vnetHdrLen {
			d.pool.Put(bp)
			continue
		}
		if d.im.outage > 0 && d.im.out(time.Now()) { // no clock read per frame without -outage
			d.outageDrops.Add(1)
			d.pool.Put(bp)
			continue
		}
		d.frames.Add(1)
		d.bytes.Add(uint64(n - vnetHdrLen))
		if buf[1] != 0 || n-vnetHdrLen > d.mtu+14 { // gso_type set, or bigger than a frame
			d.gso.Add(1)
		}
		buf[0] &^= 2 // VIRTIO_NET_HDR_F_DATA_VALID: a receive-only flag
		if d.im.none() {
			d.write(buf[:n])
			d.pool.Put(bp)
			continue
		}
		d.enqueue(bp, n)
	}
}

func (d *direction) write(b []byte) {
	for {
		_, err := unix.Write(d.out, b)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ENOBUFS || err == unix.EAGAIN {
			d.tailDrops.Add(1) // the output queue is full: as a router would
			return
		}
		if err != nil {
			d.writeErrs.Add(1)
		}
		return
	}
}

// enqueue schedules a frame.
func (d *direction) enqueue(bp *[]byte, n int) {
	now := time.Now()
	due := now.Add(d.im.delay)
	if d.im.jitter > 0 {
		due = due.Add(time.Duration(mrand.Int64N(int64(2*d.im.jitter)+1)) - d.im.jitter)
	}
	d.mu.Lock()
	if len(d.q) >= d.im.limit {
		d.mu.Unlock()
		d.tailDrops.Add(1)
		d.pool.Put(bp)
		return
	}
	if d.im.reorder > 0 && mrand.Float64() < d.im.reorder {
		due = due.Add(d.im.gap)
		d.reordered.Add(1)
	} else {
		if due.Before(d.last) {
			due = d.last
		}
		d.last = due
	}
	d.seq++
	heap.Push(&d.q, frame{due: due, seq: d.seq, buf: bp, n: n})
	head := d.q[0].seq == d.seq
	d.mu.Unlock()
	if head {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// sender writes queued frames when they are due.
func (d *direction) sender() {
	t := time.NewTimer(time.Hour)
	for {
		d.mu.Lock()
		var wait time.Duration = time.Hour
		for len(d.q) > 0 {
			if w := time.Until(d.q[0].due); w > 0 {
				wait = w
				break
			}
			f := heap.Pop(&d.q).(frame)
			d.mu.Unlock()
			if late := time.Since(f.due); late > lateThreshold {
				d.late.Add(1)
				for ns := uint64(late); ; {
					old := d.lateMax.Load()
					if ns <= old || d.lateMax.CompareAndSwap(old, ns) {
						break
					}
				}
			}
			d.write((*f.buf)[:f.n])
			d.pool.Put(f.buf)
			d.mu.Lock()
		}
		d.mu.Unlock()
		t.Reset(wait)
		select {
		case <-t.C:
		case <-d.wake: // an earlier frame: Reset (Go 1.23 timers) drops the stale tick
		}
	}
}

type frame struct {
	due time.Time
	seq uint64
	buf *[]byte
	n   int
}

// frameHeap orders frames by due time, then arrival.
type frameHeap []frame

func (h frameHeap) Len() int { return len(h) }
func (h frameHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h frameHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *frameHeap) Push(x any)   { *h = append(*h, x.(frame)) }
func (h *frameHeap) Pop() any {
	old := *h
	f := old[len(old)-1]
	*h = old[:len(old)-1]
	return f
}
