package netstack

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// impairment is what a lossy pipe does to every packet, each way.
type impairment struct {
	lossPermille int           // dropped at random
	delay        time.Duration // one way
	reorder      float64       // share of packets held back gap longer
	gap          time.Duration
	// burstEvery and burstLen: drop burstLen packets in a row of every
	// burstEvery, counted over both directions (nftables numgen inc on a
	// bridge); 0: no bursts.
	burstEvery, burstLen int
	// rate (bytes per second, 0: none) makes the pipe a bottleneck: each
	// way, packets leave one after another at this rate from a FIFO of
	// at most queueBytes (tail drop), the congested link a congestion
	// control must back off on.
	rate       float64
	queueBytes int
}

// lossyTUNs is pipeTUNs with loss, delay and reordering: the in-process
// stand-in for e2e/bench's impaired wire, with both stacks' gVisor
// counters at hand.
// bottleneckStats is what the bottleneck saw: tail drops and the queueing
// delay each packet met (sum, count, max).
type bottleneckStats struct {
	mu        sync.Mutex
	tailDrops int
	sum, max  time.Duration
	n         int
}

func (b *bottleneckStats) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("tail drops %d, queueing delay mean %v max %v", b.tailDrops, (b.sum / time.Duration(max(b.n, 1))).Round(time.Microsecond), b.max.Round(time.Microsecond))
}

func lossyTUNs(t testing.TB, a, b tun.Device, imp impairment, bn *bottleneckStats) {
	type held struct {
		due time.Time
		pkt []byte
	}
	var wg sync.WaitGroup
	var frames atomic.Uint64
	pump := func(from, to tun.Device, seed uint64) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(seed, 7))
		bufs := make([][]byte, from.BatchSize())
		for i := range bufs {
			bufs[i] = make([]byte, 65535)
		}
		sizes := make([]int, len(bufs))
		var mu sync.Mutex
		var queues [2][]held   // in time order: on time, held back
		var linkFree time.Time // when the bottleneck has sent its queue
		wake := make(chan struct{}, 1)
		done := make(chan struct{})
		go func() { // the wire's far end
			defer wg.Done()
			for {
				mu.Lock()
				now := time.Now()
				var out [][]byte
				var next time.Time
				for q := range queues {
					for len(queues[q]) > 0 && !queues[q][0].due.After(now) {
						out = append(out, queues[q][0].pkt)
						queues[q] = queues[q][1:]
					}
					if len(queues[q]) > 0 && (next.IsZero() || queues[q][0].due.Before(next)) {
						next = queues[q][0].due
					}
				}
				mu.Unlock()
				if len(out) > 0 {
					if _, err := to.Write(out, 0); err != nil {
						return
					}
					continue
				}
				var timer <-chan time.Time
				if !next.IsZero() {
					timer = time.After(time.Until(next))
				}
				select {
				case <-done:
					return
				case <-wake:
				case <-timer:
				}
			}
		}()
		defer close(done)
		for {
			n, err := from.Read(bufs, sizes, 0)
			if err != nil {
				return
			}
			now := time.Now()
			mu.Lock()
			for i := range n {
				if rng.IntN(1000) < imp.lossPermille {
					continue
				}
				if imp.burstEvery > 0 && int((frames.Add(1)+uint64(imp.burstLen)-1)%uint64(imp.burstEvery)) < imp.burstLen {
					continue
				}
				due := now
				if imp.rate > 0 {
					if linkFree.Before(now) {
						linkFree = now
					}
					wait := linkFree.Sub(now)
					bn.mu.Lock()
					if float64(wait)*imp.rate/float64(time.Second) > float64(imp.queueBytes) {
						bn.tailDrops++
						bn.mu.Unlock()
						continue
					}
					bn.sum += wait
					bn.n++
					bn.max = max(bn.max, wait)
					bn.mu.Unlock()
					linkFree = linkFree.Add(time.Duration(float64(sizes[i]) / imp.rate * float64(time.Second)))
					due = linkFree
				}
				h := held{due: due.Add(imp.delay), pkt: append([]byte(nil), bufs[i][:sizes[i]]...)}
				q := 0
				if rng.Float64() < imp.reorder {
					h.due, q = h.due.Add(imp.gap), 1
				}
				queues[q] = append(queues[q], h)
			}
			mu.Unlock()
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}
	wg.Add(4)
	go pump(a, b, 1)
	go pump(b, a, 2)
	t.Cleanup(func() {
		a.Close()
		b.Close()
		wg.Wait()
	})
}

// tcpCounters picks the loss-recovery counters of gVisor's TCP stats.
func tcpCounters(s *Stack) map[string]uint64 {
	st := s.ip.Stats().TCP
	out := map[string]uint64{}
	v := reflect.ValueOf(st)
	for i := range v.NumField() {
		if c, ok := v.Field(i).Interface().(*tcpip.StatCounter); ok && c.Value() != 0 {
			out[v.Type().Field(i).Name] = c.Value()
		}
	}
	return out
}

// TestLossyTransfer moves NODEWIRE_LOSSY_MB MiB (default 4) through the
// overlay over a pipe with NODEWIRE_LOSSY_LOSS permille loss each way (20),
// NODEWIRE_LOSSY_DELAY one way and NODEWIRE_LOSSY_REORDER (share) of packets
// held NODEWIRE_LOSSY_GAP longer, with NODEWIRE_LOSSY_BURST_EVERY N also
// NODEWIRE_LOSSY_BURST_LEN (10) packets in a row of every N dropped, counted
// over both directions (as nftables numgen inc on a bridge; the first burst
// after N-10 packets), and logs the time and both stacks' gVisor
// TCP counters: the loss-recovery lab. NODEWIRE_LOSSY_RATE (MB/s) makes
// the pipe a bottleneck with a FIFO of NODEWIRE_LOSSY_QUEUE_KB (256), and
// NODEWIRE_LOSSY_CC picks the congestion control. It asserts only that the bytes
// arrive.
func TestLossyTransfer(t *testing.T) {
	env := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	mb, _ := strconv.Atoi(env("NODEWIRE_LOSSY_MB", "4"))
	loss, _ := strconv.Atoi(env("NODEWIRE_LOSSY_LOSS", "20"))
	delay, _ := time.ParseDuration(env("NODEWIRE_LOSSY_DELAY", "0s"))
	reorder, _ := strconv.ParseFloat(env("NODEWIRE_LOSSY_REORDER", "0"), 64)
	gap, _ := time.ParseDuration(env("NODEWIRE_LOSSY_GAP", "2ms"))
	burstEvery, _ := strconv.Atoi(env("NODEWIRE_LOSSY_BURST_EVERY", "0"))
	burstLen, _ := strconv.Atoi(env("NODEWIRE_LOSSY_BURST_LEN", "10"))
	rate, _ := strconv.ParseFloat(env("NODEWIRE_LOSSY_RATE", "0"), 64)
	queueKB, _ := strconv.Atoi(env("NODEWIRE_LOSSY_QUEUE_KB", "256"))
	imp := impairment{lossPermille: loss, delay: delay, reorder: reorder, gap: gap, burstEvery: burstEvery, burstLen: burstLen,
		rate: rate * 1e6, queueBytes: queueKB << 10}

	w := &world{payKey: newTestKey(t), monKey: newTestKey(t), epmdPort: freePort(t), exposePort: freePort(t)}
	o := erlangRule(w)
	p := &pair{w: w}
	p.pay = startHost(t, w, "pay-1", payFaces, o)
	p.mon = startHost(t, w, "mon-1", monFaces, o)
	if cc := os.Getenv("NODEWIRE_LOSSY_CC"); cc != "" {
		for _, h := range []*host{p.pay, p.mon} {
			opt := tcpip.CongestionControlOption(cc)
			if err := h.stack.ip.SetTransportProtocolOption(tcp.ProtocolNumber, &opt); err != nil {
				t.Fatalf("congestion control %q: %v", cc, err)
			}
		}
	}
	var bn bottleneckStats
	lossyTUNs(t, p.pay.stack.TUN(), p.mon.stack.TUN(), imp, &bn)

	var got atomic.Int64
	counts := make(chan int64, 1)
	serveTCP(t, netip.AddrPortFrom(p.pay.face("pay-1"), p.w.exposePort), func(c *net.TCPConn) {
		buf := make([]byte, 64<<10)
		var n int64
		for {
			k, err := c.Read(buf)
			n += int64(k)
			got.Store(n)
			if err != nil {
				break
			}
		}
		counts <- n
	})
	// A second without progress is logged with both stacks' counters (a
	// connection that never finishes is what this lab found first).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		last, at := int64(-1), time.Now()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if n := got.Load(); n != last {
				last, at = n, time.Now()
				continue
			}
			if time.Since(at) > time.Second && last > 0 {
				t.Logf("stalled at %d bytes: mon-1 %v, pay-1 %v", last, tcpCounters(p.mon.stack), tcpCounters(p.pay.stack))
				at = time.Now()
			}
		}
	}()
	c, err := net.Dial("tcp4", netip.AddrPortFrom(p.mon.face("pay-1"), p.w.exposePort).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	chunk := make([]byte, 1<<20)
	start := time.Now()
	if err := c.SetWriteDeadline(time.Now().Add(120 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for range mb {
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	select {
	case n := <-counts:
		if n != int64(mb)<<20 {
			t.Fatalf("sink got %d bytes, want %d", n, int64(mb)<<20)
		}
	case <-time.After(120 * time.Second):
		t.Fatal("no end of transfer in 120 s")
	}
	d := time.Since(start)
	t.Logf("%+v: %d MiB in %v (%.1f MB/s)", imp, mb, d.Round(time.Millisecond), float64(mb<<20)/d.Seconds()/1e6)
	if imp.rate > 0 {
		t.Logf("bottleneck %.0f MB/s, queue %d KiB: %v", imp.rate/1e6, imp.queueBytes>>10, &bn)
	}
	for _, h := range []*host{p.mon, p.pay} {
		t.Logf("%s tcp: %v", h.name, fmt.Sprint(tcpCounters(h.stack)))
	}
}
