package udpbind

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

// family is one address family the tests run over loopback.
type family struct {
	name string
	lo   netip.Addr
	fn   int // index of its ReceiveFunc when both families are open
}

func families(t testing.TB) []family {
	fs := []family{{"v4", netip.MustParseAddr("127.0.0.1"), 0}}
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err == nil {
		c.Close()
		fs = append(fs, family{"v6", netip.MustParseAddr("::1"), 1})
	} else {
		t.Logf("no IPv6 loopback (%v): IPv6 cases not run", err)
	}
	return fs
}

// openBind opens b on a random port and closes it at test end.
func openBind(t testing.TB, b conn.Bind) ([]conn.ReceiveFunc, uint16) {
	t.Helper()
	fns, port, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return fns, port
}

// receiver collects packets from one ReceiveFunc with caller-owned buffers
// shaped as wireguard-go's (BatchSize buffers of 64 KiB).
type collector struct {
	fn    conn.ReceiveFunc
	bufs  [][]byte
	sizes []int
	eps   []conn.Endpoint
}

func newCollector(fn conn.ReceiveFunc, batch int) *collector {
	c := &collector{fn: fn, bufs: make([][]byte, batch), sizes: make([]int, batch), eps: make([]conn.Endpoint, batch)}
	for i := range c.bufs {
		c.bufs[i] = make([]byte, 1<<16-1)
	}
	return c
}

// packet is one received datagram.
type packet struct {
	data []byte
	ep   conn.Endpoint
}

// recv reads until n packets arrived. A watchdog closes b if they do not
// within 10 s, which fails the read instead of hanging the test.
func (c *collector) recv(t testing.TB, b conn.Bind, n int) []packet {
	t.Helper()
	watchdog := time.AfterFunc(10*time.Second, func() { b.Close() })
	defer watchdog.Stop()
	var got []packet
	for len(got) < n {
		k, err := c.fn(c.bufs, c.sizes, c.eps)
		if err != nil {
			t.Fatalf("receive after %d of %d packets: %v", len(got), n, err)
		}
		for i := range k {
			if c.sizes[i] == 0 {
				continue
			}
			got = append(got, packet{bytes.Clone(c.bufs[i][:c.sizes[i]]), c.eps[i]})
		}
	}
	if len(got) != n {
		t.Fatalf("got %d packets, want %d", len(got), n)
	}
	return got
}

// count reads until n packets arrived, without keeping them (for alloc
// tests and benchmarks).
func (c *collector) count(n int) error {
	for got := 0; got < n; {
		k, err := c.fn(c.bufs, c.sizes, c.eps)
		if err != nil {
			return err
		}
		for _, s := range c.sizes[:k] {
			if s > 0 {
				got++
			}
		}
	}
	return nil
}

// makePackets returns one packet per size, each filled with its index so
// that reordering or a bad split shows.
func makePackets(sizes []int) [][]byte {
	bufs := make([][]byte, len(sizes))
	for i, n := range sizes {
		b := make([]byte, n, 1<<16-1)
		for j := range b {
			b[j] = byte(i + j/256)
		}
		bufs[i] = b
	}
	return bufs
}

func repeat(n, size int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = size
	}
	return s
}

func TestSendReceive(t *testing.T) {
	cases := []struct {
		name  string
		sizes []int
	}{
		{"one", []int{100}},
		{"batch of equal", repeat(conn.IdealBatchSize, 1452)},
		{"equal with short tail", append(repeat(20, 1200), 300)},
		{"mixed sizes", []int{1452, 1452, 60, 1452, 800, 800, 800, 1452, 1452, 32}},
		{"growing sizes", []int{100, 200, 300, 400}},
		{"more than 64 equal", repeat(100, 500)},
		{"large", []int{9000, 9000, 9000}},
	}
	a, b := New(), New()
	_, aport := openBind(t, a)
	bfns, bport := openBind(t, b)
	for _, f := range families(t) {
		bc := newCollector(bfns[f.fn], b.BatchSize())
		dst, err := a.ParseEndpoint(netip.AddrPortFrom(f.lo, bport).String())
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				want := makePackets(tc.sizes)
				if err := a.Send(want, dst); err != nil {
					t.Fatal(err)
				}
				got := bc.recv(t, b, len(want))
				for i := range want {
					if !bytes.Equal(got[i].data, want[i]) {
						t.Fatalf("packet %d: got %d bytes %x..., want %d bytes %x...", i,
							len(got[i].data), head(got[i].data), len(want[i]), head(want[i]))
					}
					if s, w := got[i].ep.DstToString(), netip.AddrPortFrom(f.lo, aport).String(); s != w {
						t.Errorf("packet %d from %s, want %s", i, s, w)
					}
					if s := got[i].ep.SrcIP(); s != f.lo {
						t.Errorf("packet %d: sticky source %v, want %v", i, s, f.lo)
					}
				}
			})
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 8)] }

// TestEndpointIdentity checks that packets from one source share one
// Endpoint, another source gets another, and replying to a received
// endpoint reaches the sender from the address it wrote to.
func TestEndpointIdentity(t *testing.T) {
	a1, a2, b := New(), New(), New()
	a1fns, _ := openBind(t, a1)
	_, a2port := openBind(t, a2)
	bfns, bport := openBind(t, b)
	for _, f := range families(t) {
		t.Run(f.name, func(t *testing.T) {
			bc := newCollector(bfns[f.fn], b.BatchSize())
			to := func(bind conn.Bind) conn.Endpoint {
				ep, err := bind.ParseEndpoint(netip.AddrPortFrom(f.lo, bport).String())
				if err != nil {
					t.Fatal(err)
				}
				return ep
			}
			send := func(bind conn.Bind, n int) {
				if err := bind.Send(makePackets(repeat(n, 64)), to(bind)); err != nil {
					t.Fatal(err)
				}
			}
			send(a1, 3)
			first := bc.recv(t, b, 3)
			send(a1, 2)
			again := bc.recv(t, b, 2)
			send(a2, 1)
			other := bc.recv(t, b, 1)
			for _, p := range append(first[1:], again...) {
				if p.ep != first[0].ep {
					t.Fatalf("same source, different endpoints %p and %p", p.ep, first[0].ep)
				}
			}
			if other[0].ep == first[0].ep {
				t.Fatal("two sources share an endpoint")
			}
			if got, want := other[0].ep.DstToString(), netip.AddrPortFrom(f.lo, a2port).String(); got != want {
				t.Fatalf("second source is %s, want %s", got, want)
			}

			// Reply through the cached endpoint (with its sticky source).
			if err := b.Send(makePackets([]int{77}), first[0].ep); err != nil {
				t.Fatal(err)
			}
			reply := newCollector(a1fns[f.fn], a1.BatchSize()).recv(t, a1, 1)
			if got, want := reply[0].ep.DstToString(), netip.AddrPortFrom(f.lo, bport).String(); got != want {
				t.Fatalf("reply from %s, want %s", got, want)
			}
		})
	}
}

// TestStaleStickySource sends to an endpoint whose sticky source is not a
// local address: the kernel refuses it, Send clears it and delivers anyway.
func TestStaleStickySource(t *testing.T) {
	a, b := New(), New()
	openBind(t, a)
	bfns, bport := openBind(t, b)
	ep := newEndpoint(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), bport), netip.MustParseAddr("192.0.2.1"), 0)
	if !ep.SrcIP().IsValid() {
		t.Fatal("test endpoint has no source")
	}
	if err := a.Send(makePackets(repeat(4, 100)), ep); err != nil {
		t.Fatal(err)
	}
	newCollector(bfns[0], b.BatchSize()).recv(t, b, 4)
	if s := ep.SrcIP(); s.IsValid() {
		t.Fatalf("stale source %v kept", s)
	}
}

// TestInterop exchanges packets with wireguard-go's StdNetBind both ways.
func TestInterop(t *testing.T) {
	ours, std := New(), conn.NewStdNetBind()
	ofns, oport := openBind(t, ours)
	sfns, sport := openBind(t, std)
	for _, f := range families(t) {
		t.Run(f.name, func(t *testing.T) {
			toStd, _ := ours.ParseEndpoint(netip.AddrPortFrom(f.lo, sport).String())
			toOurs, _ := std.ParseEndpoint(netip.AddrPortFrom(f.lo, oport).String())
			want := makePackets(append(repeat(30, 1452), 10))
			if err := ours.Send(want, toStd); err != nil {
				t.Fatal(err)
			}
			for i, p := range newCollector(sfns[f.fn], std.BatchSize()).recv(t, std, len(want)) {
				if !bytes.Equal(p.data, want[i]) {
					t.Fatalf("StdNetBind got packet %d wrong", i)
				}
			}
			want = makePackets(append(repeat(30, 1452), 10))
			if err := std.Send(want, toOurs); err != nil {
				t.Fatal(err)
			}
			for i, p := range newCollector(ofns[f.fn], ours.BatchSize()).recv(t, ours, len(want)) {
				if !bytes.Equal(p.data, want[i]) {
					t.Fatalf("udpbind got packet %d wrong", i)
				}
			}
		})
	}
}

// TestZeroAllocs is the point of the package: a steady-state batch sent and
// received costs no allocation.
func TestZeroAllocs(t *testing.T) {
	for _, f := range families(t) {
		for _, shape := range []struct {
			name  string
			sizes []int
		}{
			{"batch", repeat(conn.IdealBatchSize, 1452)},
			{"mixed", []int{1452, 1452, 100, 1452, 64, 64, 1452}},
			{"one", []int{148}},
		} {
			t.Run(f.name+"/"+shape.name, func(t *testing.T) {
				a, b := New(), New()
				openBind(t, a)
				bfns, bport := openBind(t, b)
				dst, _ := a.ParseEndpoint(netip.AddrPortFrom(f.lo, bport).String())
				bc := newCollector(bfns[f.fn], b.BatchSize())
				pkts := makePackets(shape.sizes)
				var err error
				round := func() {
					if err = a.Send(pkts, dst); err == nil {
						err = bc.count(len(pkts))
					}
				}
				round() // learn the source
				allocs := testing.AllocsPerRun(200, round)
				if err != nil {
					t.Fatal(err)
				}
				if allocs != 0 {
					t.Fatalf("%v allocations per send+receive of %d packets, want 0", allocs, len(pkts))
				}
			})
		}
	}
}

// TestCloseUnblocksReceive closes the Bind under ReceiveFuncs that wait for
// packets that never come: every one returns net.ErrClosed.
func TestCloseUnblocksReceive(t *testing.T) {
	b := New()
	fns, _, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		c := newCollector(fn, b.BatchSize())
		go func() {
			_, err := c.fn(c.bufs, c.sizes, c.eps)
			errs <- err
		}()
	}
	// Give the readers a chance to block; either order must end in ErrClosed.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for range fns {
		select {
		case err := <-errs:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("receive after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("receive still blocked 5 s after Close")
		}
	}
}

// TestCloseUnblocksBlockedReceive proves the read was blocked in the
// netpoller (it already returned one packet and is reading again).
func TestCloseUnblocksBlockedReceive(t *testing.T) {
	a, b := New(), New()
	openBind(t, a)
	fns, port, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector(fns[0], b.BatchSize())
	reads := make(chan error)
	go func() {
		for {
			_, err := c.fn(c.bufs, c.sizes, c.eps)
			reads <- err
			if err != nil {
				return
			}
		}
	}()
	dst, _ := a.ParseEndpoint(fmt.Sprintf("127.0.0.1:%d", port))
	if err := a.Send(makePackets([]int{10}), dst); err != nil {
		t.Fatal(err)
	}
	if err := <-reads; err != nil {
		t.Fatal(err)
	}
	b.Close()
	select {
	case err := <-reads:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("got %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("receive still blocked 5 s after Close")
	}
}

func TestOpenCloseReopen(t *testing.T) {
	b := New()
	fns, port, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	if port == 0 {
		t.Fatal("Open(0) reported port 0")
	}
	if want := len(families(t)); len(fns) != want {
		t.Fatalf("%d ReceiveFuncs, want %d", len(fns), want)
	}
	if _, _, err := b.Open(0); !errors.Is(err, conn.ErrBindAlreadyOpen) {
		t.Fatalf("second Open: %v, want ErrBindAlreadyOpen", err)
	}
	dst, _ := b.ParseEndpoint(fmt.Sprintf("127.0.0.1:%d", port))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Send(makePackets([]int{1}), dst); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close: %v, want net.ErrClosed", err)
	}
	// Reopen on the same port; the old ReceiveFuncs stay closed.
	fns2, port2, err := b.Open(port)
	if err != nil {
		t.Fatalf("reopen on %d: %v", port, err)
	}
	defer b.Close()
	if port2 != port {
		t.Fatalf("reopened on %d, want %d", port2, port)
	}
	c := newCollector(fns[0], b.BatchSize())
	if _, err := c.fn(c.bufs, c.sizes, c.eps); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("old ReceiveFunc after reopen: %v, want net.ErrClosed", err)
	}
	// The reopened Bind works: it sends to itself.
	if err := b.Send(makePackets([]int{5, 6}), dst); err != nil {
		t.Fatal(err)
	}
	newCollector(fns2[0], b.BatchSize()).recv(t, b, 2)

	// Opening a port in use fails.
	other := New()
	if _, _, err := other.Open(port); !errors.Is(err, syscall.EADDRINUSE) {
		other.Close()
		t.Fatalf("Open on a used port: %v, want EADDRINUSE", err)
	}
}

func TestSetMark(t *testing.T) {
	b := New()
	if err := b.SetMark(7); err != nil {
		t.Fatalf("SetMark on a closed Bind: %v", err)
	}
	openBind(t, b)
	err := b.SetMark(0x5a)
	if errors.Is(err, unix.EPERM) {
		t.Skip("SO_MARK needs CAP_NET_ADMIN")
	}
	if err != nil {
		t.Fatal(err)
	}
	s := b.(*Bind).socks.Load()
	for _, so := range []*socket{s.v4, s.v6} {
		if so == nil {
			continue
		}
		var mark int
		var gerr error
		so.rc.Control(func(fd uintptr) { mark, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) })
		if gerr != nil || mark != 0x5a {
			t.Fatalf("%s: SO_MARK %#x (%v), want 0x5a", so.net, mark, gerr)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	b := New()
	cases := []struct {
		in, want string
		is6      bool
	}{
		{"192.0.2.1:51820", "192.0.2.1:51820", false},
		{"[2001:db8::1]:1", "[2001:db8::1]:1", true},
		{"[fe80::1%lo]:9", "[fe80::1%lo]:9", true},
		{"[::ffff:192.0.2.1]:5", "[::ffff:192.0.2.1]:5", false}, // sent over IPv4
		{"192.0.2.1", "", false},
		{"host:80", "", false},
		{"", "", false},
	}
	for _, tc := range cases {
		ep, err := b.ParseEndpoint(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseEndpoint(%q) = %v, want an error", tc.in, ep.DstToString())
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseEndpoint(%q): %v", tc.in, err)
			continue
		}
		e := ep.(*Endpoint)
		if got := e.DstToString(); got != tc.want {
			t.Errorf("ParseEndpoint(%q) = %s", tc.in, got)
		}
		if e.is6() != tc.is6 {
			t.Errorf("ParseEndpoint(%q) IPv6 socket = %v, want %v", tc.in, e.is6(), tc.is6)
		}
		if e.SrcIP().IsValid() || e.SrcToString() != "invalid IP" {
			t.Errorf("ParseEndpoint(%q) has source %v", tc.in, e.SrcIP())
		}
	}
	if lo, err := net.InterfaceByName("lo"); err == nil {
		ep, _ := b.ParseEndpoint("[fe80::1%lo]:9")
		if got := ep.(*Endpoint).sa.Scope_id; got != uint32(lo.Index) {
			t.Errorf("zone lo → scope %d, want %d", got, lo.Index)
		}
	}
}

func TestWrongEndpointType(t *testing.T) {
	b := New()
	openBind(t, b)
	ep, _ := conn.NewStdNetBind().ParseEndpoint("127.0.0.1:1")
	if err := b.Send(makePackets([]int{1}), ep); !errors.Is(err, conn.ErrWrongEndpointType) {
		t.Fatalf("Send to a StdNetEndpoint: %v", err)
	}
}

// TestOffloadReported checks that what each socket believes about offload
// (it decides how Send batches and whether receive splits messages) is
// what the kernel says of that socket now, and logs it, so a benchmark run
// says whether GSO/GRO were in play.
func TestOffloadReported(t *testing.T) {
	b := New()
	openBind(t, b)
	s := b.(*Bind).socks.Load()
	if s.v4 == nil {
		t.Fatal("no IPv4 socket")
	}
	for _, so := range []*socket{s.v4, s.v6} {
		if so == nil {
			continue
		}
		var segErr, groErr error
		var gro int
		if err := so.rc.Control(func(fd uintptr) {
			_, segErr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
			gro, groErr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO)
		}); err != nil {
			t.Fatal(err)
		}
		if got, want := so.gso.Load(), segErr == nil; got != want {
			t.Errorf("%s: believes UDP_SEGMENT %v, kernel says %v (%v)", so.net, got, want, segErr)
		}
		if got, want := so.gro, groErr == nil && gro == 1; got != want {
			t.Errorf("%s: believes UDP_GRO %v, kernel says %v (%d, %v)", so.net, got, want, gro, groErr)
		}
		t.Logf("%s: UDP_SEGMENT %v, UDP_GRO %v (kernel %s)", so.net, so.gso.Load(), so.gro, kernel())
	}
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return string(bytes.TrimSpace(b))
}

// TestGROSplit checks that offload is really in play over loopback: a batch
// sent with UDP_SEGMENT arrives as fewer recvmmsg messages than datagrams
// (UDP_GRO kept them coalesced), and the split gives back every datagram.
func TestGROSplit(t *testing.T) {
	for _, f := range families(t) {
		t.Run(f.name, func(t *testing.T) {
			network := "udp4"
			if f.lo.Is6() {
				network = "udp6"
			}
			s, port, err := listen(network, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer s.conn.Close()
			if !s.gro || !s.gso.Load() {
				t.Skipf("kernel %s: UDP_SEGMENT %v, UDP_GRO %v", kernel(), s.gso.Load(), s.gro)
			}
			r := newReceiver(s, conn.IdealBatchSize, 16)
			a := New()
			openBind(t, a)
			dst, _ := a.ParseEndpoint(netip.AddrPortFrom(f.lo, uint16(port)).String())
			want := makePackets(append(repeat(conn.IdealBatchSize-1, 1452), 99))
			if err := a.Send(want, dst); err != nil {
				t.Fatal(err)
			}
			c := newCollector(r.receive, conn.IdealBatchSize)
			var got [][]byte
			messages := 0
			for len(got) < len(want) {
				k, err := c.fn(c.bufs, c.sizes, c.eps)
				if err != nil {
					t.Fatal(err)
				}
				messages += r.got
				for i := range k {
					got = append(got, bytes.Clone(c.bufs[i][:c.sizes[i]]))
				}
			}
			if messages >= len(want) {
				t.Fatalf("%d datagrams came in %d messages: no GRO", len(want), messages)
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("datagram %d: %d bytes %x..., want %d bytes %x...", i, len(got[i]), head(got[i]), len(want[i]), head(want[i]))
				}
			}
			t.Logf("%d datagrams in %d messages", len(want), messages)
		})
	}
}
