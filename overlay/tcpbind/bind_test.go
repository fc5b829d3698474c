package tcpbind

import (
	"bytes"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/nodewire/nodewire/overlay/udpbind"
)

// blockable is a UDP Bind whose sends can be blocked, as a firewall would.
type blockable struct {
	conn.Bind
	blocked atomic.Bool
}

func (b *blockable) Send(bufs [][]byte, ep conn.Endpoint) error {
	if b.blocked.Load() {
		return nil
	}
	return b.Bind.Send(bufs, ep)
}

type rx struct {
	msg []byte
	ep  conn.Endpoint
}

// side is one open Bind and what it receives.
type side struct {
	b    *Bind
	udp  *blockable
	port uint16
	got  chan rx
}

func open(t *testing.T, listen string) *side {
	t.Helper()
	return openWith(t, Config{Listen: listen})
}

func openWith(t *testing.T, cfg Config) *side {
	t.Helper()
	u := &blockable{Bind: udpbind.New()}
	b, err := New(u, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.t = timing{udpFresh: 2 * time.Second, fallbackAfter: 300 * time.Millisecond, probeEvery: 100 * time.Millisecond}
	fns, port, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	s := &side{b: b, udp: u, port: port, got: make(chan rx, 1024)}
	for _, fn := range fns {
		go func() {
			bufs := make([][]byte, b.BatchSize())
			for i := range bufs {
				bufs[i] = make([]byte, maxMessage)
			}
			sizes := make([]int, len(bufs))
			eps := make([]conn.Endpoint, len(bufs))
			for {
				n, err := fn(bufs, sizes, eps)
				if err != nil {
					return
				}
				for i := range n {
					s.got <- rx{append([]byte(nil), bufs[i][:sizes[i]]...), eps[i]}
				}
			}
		}()
	}
	t.Cleanup(func() { b.Close() })
	return s
}

func (s *side) expect(t *testing.T, want []byte) rx {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case r := <-s.got:
			if bytes.Equal(r.msg, want) {
				return r
			}
		case <-deadline:
			t.Fatalf("did not receive the %d-byte message of type %d", len(want), want[0])
		}
	}
}

// sendUntil sends msg to ep until the other side receives it.
func sendUntil(t *testing.T, from *side, ep conn.Endpoint, to *side, msg []byte) rx {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := from.b.Send([][]byte{msg}, ep); err != nil {
			t.Logf("send: %v", err)
		}
		select {
		case r := <-to.got:
			if bytes.Equal(r.msg, msg) {
				return r
			}
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("message never arrived")
		}
	}
}

func TestPinnedTCP(t *testing.T) {
	a := open(t, "127.0.0.1:0")
	b := open(t, "")
	ep, err := b.b.ParseEndpoint(TCPPrefix + a.b.ListenAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	init := message(msgInitiation, sizeInitiation)
	r := sendUntil(t, b, ep, a, init)
	if _, ok := r.ep.(*streamEndpoint); !ok {
		t.Fatalf("arrived from %T, want a stream endpoint", r.ep)
	}
	// The reply goes back on the stream and arrives as b's peer Endpoint.
	resp := message(msgResponse, sizeResponse)
	if err := a.b.Send([][]byte{resp}, r.ep); err != nil {
		t.Fatal(err)
	}
	if got := b.expect(t, resp); got.ep != ep {
		t.Fatalf("reply arrived from %v, want the peer's endpoint", got.ep)
	}
	// A batch of data messages arrives whole and in order.
	var batch [][]byte
	for i := range 64 {
		m := message(msgData, 64+i*16)
		batch = append(batch, m)
	}
	if err := b.b.Send(batch, ep); err != nil {
		t.Fatal(err)
	}
	for _, m := range batch {
		a.expect(t, m)
	}
	if got := ep.(*Endpoint).Transport(); got != "tcp" {
		t.Fatalf("transport %s, want tcp", got)
	}
}

// TestFallbackAndBack: with UDP blocked the peer's datagrams go over TCP
// after fallbackAfter; once UDP is open again, probes move it back.
func TestFallbackAndBack(t *testing.T) {
	a := open(t, "127.0.0.1:0")
	b := open(t, "")
	b.udp.blocked.Store(true)
	spec := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(a.port))) + "," + TCPPrefix + a.b.ListenAddr().String()
	ep, err := b.b.ParseEndpoint(spec)
	if err != nil {
		t.Fatal(err)
	}
	e := ep.(*Endpoint)
	init := message(msgInitiation, sizeInitiation)
	r := sendUntil(t, b, ep, a, init)
	if e.Transport() != "tcp" {
		t.Fatalf("transport %s after UDP was blocked, want tcp", e.Transport())
	}
	if _, ok := r.ep.(*streamEndpoint); !ok {
		t.Fatalf("arrived from %T, want a stream endpoint", r.ep)
	}
	b.udp.blocked.Store(false)
	// A replies to whatever it last heard from; b's small messages probe UDP.
	deadline := time.Now().Add(5 * time.Second)
	for e.Transport() != "udp" {
		if time.Now().After(deadline) {
			t.Fatal("still on tcp 5s after UDP opened")
		}
		keep := message(msgData, minMessage)
		b.b.Send([][]byte{keep}, ep)
		select {
		case r := <-a.got:
			a.b.Send([][]byte{message(msgData, 48)}, r.ep)
		case <-time.After(20 * time.Millisecond):
		}
	}
	data := message(msgData, 1000)
	got := sendUntil(t, b, ep, a, data)
	if _, ok := got.ep.(*streamEndpoint); ok {
		t.Fatal("data still arrives over the stream after moving back to UDP")
	}
}

// TestFallbackMidSession: UDP cut in the middle of a session, the peer heard
// from a moment before, moves the peer to TCP once unansweredSends data
// messages have gone unanswered for fallbackAfter, without waiting for the
// peer's last datagram to grow older than udpFresh; a lone unanswered
// message followed by keepalives only does not move it.
func TestFallbackMidSession(t *testing.T) {
	a := open(t, "127.0.0.1:0")
	b := open(t, "")
	b.b.t.udpFresh = time.Hour // only the unanswered rule can move it
	spec := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(a.port))) + "," + TCPPrefix + a.b.ListenAddr().String()
	ep, err := b.b.ParseEndpoint(spec)
	if err != nil {
		t.Fatal(err)
	}
	e := ep.(*Endpoint)
	seq := 0
	data := func() []byte { seq++; return message(msgData, 100+seq%500) }
	// answered sends data over UDP until a's reply comes back over UDP.
	answered := func() {
		t.Helper()
		r := sendUntil(t, b, ep, a, data())
		reply := message(msgData, 64)
		a.b.Send([][]byte{reply}, r.ep)
		if got := b.expect(t, reply); got.ep != ep {
			t.Fatalf("reply arrived from %T, want the peer's endpoint", got.ep)
		}
	}
	answered()

	b.udp.blocked.Store(true)
	lone := time.Now()
	if err := b.b.Send([][]byte{data()}, ep); err != nil {
		t.Fatal(err)
	}
	for time.Since(lone) < 3*b.b.t.fallbackAfter {
		b.b.Send([][]byte{message(msgData, minMessage)}, ep)
		time.Sleep(20 * time.Millisecond) // pacing the keepalives, not waiting for an event
	}
	if e.Transport() != "udp" {
		t.Fatal("one unanswered message and keepalives moved the peer to TCP")
	}

	b.udp.blocked.Store(false)
	answered()
	b.udp.blocked.Store(true)
	cut := time.Now()
	deadline := cut.Add(5 * time.Second)
	for e.Transport() != "tcp" {
		if time.Now().After(deadline) {
			t.Fatalf("still on UDP 5 s after it was cut (udpFresh %v, fallbackAfter %v)", b.b.t.udpFresh, b.b.t.fallbackAfter)
		}
		b.b.Send([][]byte{data()}, ep)
		time.Sleep(20 * time.Millisecond) // pacing the sends, as TCP's retransmissions are
	}
	if r := sendUntil(t, b, ep, a, data()); r.ep == nil {
		t.Fatal("no endpoint")
	} else if _, ok := r.ep.(*streamEndpoint); !ok {
		t.Fatalf("after the cut, data arrived from %T, want a stream endpoint", r.ep)
	}
	t.Logf("UDP cut mid-session: on TCP after %v (fallbackAfter %v, %d sends)", time.Since(cut).Round(time.Millisecond), b.b.t.fallbackAfter, unansweredSends)
	// While UDP stays cut, the peer stays on TCP through its probes, a's
	// replies arriving over the stream.
	onTCP := time.Now()
	for time.Since(onTCP) < 5*b.b.t.probeEvery {
		r := sendUntil(t, b, ep, a, data())
		a.b.Send([][]byte{message(msgData, 64)}, r.ep)
		if e.Transport() != "tcp" {
			t.Fatalf("back on UDP %v after moving to TCP, with UDP still cut", time.Since(onTCP).Round(time.Millisecond))
		}
		time.Sleep(10 * time.Millisecond) // pacing
	}
}
