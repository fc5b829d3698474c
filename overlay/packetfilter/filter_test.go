package packetfilter

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/peers"
)

// fakeTUN is the kernel side: Read hands out queued packets, Write records
// what reaches the kernel.
type fakeTUN struct {
	tun.Device // nil: only Read, Write and BatchSize are used
	mu         sync.Mutex
	toRead     [][]byte
	written    [][]byte
}

func (d *fakeTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for n < len(bufs) && len(d.toRead) > 0 {
		sizes[n] = copy(bufs[n][offset:], d.toRead[0])
		d.toRead = d.toRead[1:]
		n++
	}
	return n, nil
}

func (d *fakeTUN) Write(bufs [][]byte, offset int) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, b := range bufs {
		d.written = append(d.written, bytes.Clone(b[offset:]))
	}
	return len(bufs), nil
}

func (d *fakeTUN) BatchSize() int { return 8 }

// File is nil: the fake has no file to set deadlines on; its Read never
// blocks, so answers leave with the next Read anyway.
func (d *fakeTUN) File() *os.File { return nil }

func (d *fakeTUN) take() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.written
	d.written = nil
	return w
}

// Addresses of the fixture (testdata/peers.yaml): the host under test is
// pay-1; pay-2 shares its network; mon-1 is in monitoring, which may reach
// payments on the erlang ports only; guest-1's network may reach nothing.
var (
	pay1   = netip.MustParseAddr("10.77.1.1")
	pay2   = netip.MustParseAddr("10.77.1.2")
	mon1   = netip.MustParseAddr("10.77.2.1")
	guest1 = netip.MustParseAddr("10.77.3.1")
	alien  = netip.MustParseAddr("10.77.9.9")
)

func loadSnap(t testing.TB, path string, edit func(string) string) *peers.Snapshot {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if edit != nil {
		text = edit(text)
	}
	f, err := peers.Parse(path, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return &peers.Snapshot{File: f, Self: f.Peer("pay-1")}
}

// ip builds an IPv4 packet around l4.
func ip(proto uint8, src, dst netip.Addr, l4 []byte) []byte {
	b := make([]byte, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	copy(b[20:], l4)
	return b
}

func tcp(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, flags uint8, seq, ack uint32, payload ...byte) []byte {
	l4 := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(l4[0:2], sport)
	binary.BigEndian.PutUint16(l4[2:4], dport)
	binary.BigEndian.PutUint32(l4[4:8], seq)
	binary.BigEndian.PutUint32(l4[8:12], ack)
	l4[12] = 5 << 4
	l4[13] = flags
	copy(l4[20:], payload)
	return ip(protoTCP, src, dst, l4)
}

func udp(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) []byte {
	l4 := make([]byte, 12)
	binary.BigEndian.PutUint16(l4[0:2], sport)
	binary.BigEndian.PutUint16(l4[2:4], dport)
	binary.BigEndian.PutUint16(l4[4:6], 12)
	return ip(protoUDP, src, dst, l4)
}

func icmp(src, dst netip.Addr, typ uint8, id uint16, quoted []byte) []byte {
	l4 := make([]byte, 8+len(quoted))
	l4[0] = typ
	binary.BigEndian.PutUint16(l4[4:6], id)
	copy(l4[8:], quoted)
	return ip(protoICMP, src, dst, l4)
}

// port2RespBytes is epmd's ok answer to PORT_PLEASE2 for node app on port.
func port2RespBytes(port uint16) []byte { return port2RespFor("app", port) }

// port2RespFor is epmd's ok answer to PORT_PLEASE2 for node on port.
func port2RespFor(node string, port uint16) []byte {
	b := []byte{erldist.TagPort2Resp, 0, byte(port >> 8), byte(port), 77, 0, 0, 6, 0, 5}
	b = binary.BigEndian.AppendUint16(b, uint16(len(node)))
	b = append(b, node...)
	return append(b, 0, 0)
}

// epmdReq is a framed EPMD request: tag, then body.
func epmdReq(tag byte, body string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(1+len(body))), append([]byte{tag}, body...)...)
}

func fragment(b []byte) []byte {
	b = bytes.Clone(b)
	binary.BigEndian.PutUint16(b[6:8], 0x2000) // MF
	return b
}

func ipv6() []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	return b
}

const (
	syn    = tcpSYN
	synack = tcpSYN | tcpACK
	ack    = tcpACK
	rst    = tcpRST
	rstack = tcpRST | tcpACK
	fin    = tcpFIN | tcpACK
)

// step is one packet through the filter: in (from WireGuard to the kernel)
// or out (from the kernel to WireGuard), and whether it must pass.
type step struct {
	dir  peers.Direction
	pkt  []byte
	pass bool
}

func in(pkt []byte, pass bool) step  { return step{peers.Inbound, pkt, pass} }
func out(pkt []byte, pass bool) step { return step{peers.Outbound, pkt, pass} }

// filterCase is packets through a new filter, and what it must have done.
type filterCase struct {
	name    string
	steps   []step
	resets  int      // resets the filter writes to the kernel itself
	answers int      // resets the filter sends to peers (refused SYNs and first segments)
	logHas  []string // each must appear in the log
	logNone bool     // nothing may be logged
}

func TestFilter(t *testing.T) {
	tests := []filterCase{
		{
			name: "same network: epmd in, replies out, then the connection closes",
			steps: []step{
				in(tcp(pay2, 40000, pay1, 4369, syn, 100, 0), true),
				out(tcp(pay1, 4369, pay2, 40000, synack, 500, 101), true),
				in(tcp(pay2, 40000, pay1, 4369, ack, 101, 501, 0, 4, 122, 'a', 'p', 'p'), true),
				out(tcp(pay1, 4369, pay2, 40000, fin, 501, 105), true),
				in(tcp(pay2, 40000, pay1, 4369, fin, 105, 502), true),
				out(tcp(pay1, 4369, pay2, 40000, ack, 502, 106), true),
			},
			logNone: true,
		},
		{
			name: "across networks by a rule: monitoring may ask payments' epmd",
			steps: []step{
				in(tcp(mon1, 40000, pay1, 4369, syn, 1, 0), true),
				out(tcp(pay1, 4369, mon1, 40000, synack, 9, 2), true),
			},
		},
		{
			name: "across networks against the policy: refused at once with a reset to the local client",
			steps: []step{
				out(tcp(pay1, 40001, mon1, 4369, syn, 7, 0), false),
				in(tcp(mon1, 4369, pay1, 40001, synack, 1, 8), false), // no flow was made
			},
			resets: 1,
			logHas: []string{"packetfilter: refused", "dir=out", "from=pay-1", "to=mon-1", "deny default", "port=4369"},
		},
		{
			name: "inbound against the policy from a peer that reaches this host on other ports: a reset, logged",
			steps: []step{
				in(tcp(mon1, 40000, pay1, 22, syn, 1, 0), false),
			},
			answers: 1,
			logHas:  []string{"dir=in", "from=mon-1", "to=pay-1", "deny default", "port=22"},
		},
		{
			name: "inbound from a network that reaches this host on no port: no answer at all, logged",
			steps: []step{
				in(tcp(guest1, 40000, pay1, 4369, syn, 1, 0), false),
				in(tcp(guest1, 40001, pay1, 22, syn, 1, 0), false),
				in(udp(guest1, 5000, pay1, 9100), false),
			},
			logHas: []string{"dir=in", "from=guest-1", "to=pay-1", "deny default", "port=4369"},
		},
		{
			name: "same network, a port nothing offers: refused with a reset as in userspace mode",
			steps: []step{
				in(tcp(pay2, 40000, pay1, 22, syn, 1, 0), false),
				in(udp(pay2, 5000, pay1, 22), false), // UDP: nothing to reset
			},
			answers: 1,
			logHas:  []string{"port not offered"},
		},
		{
			name: "a distribution port becomes reachable once the local epmd hands it out",
			steps: []step{
				in(tcp(mon1, 40000, pay1, 35000, syn, 1, 0), false), // not registered yet: deny
				in(tcp(mon1, 40002, pay1, 4369, syn, 1, 0), true),
				out(tcp(pay1, 4369, mon1, 40002, synack, 9, 2), true),
				in(tcp(mon1, 40002, pay1, 4369, ack, 2, 10, 0, 4, 122, 'a', 'p', 'p'), true),
				out(tcp(pay1, 4369, mon1, 40002, ack, 10, 6, port2RespBytes(35000)...), true),
				in(tcp(mon1, 40003, pay1, 35000, syn, 1, 0), true), // erlang rule now covers it
				out(tcp(pay1, 35000, mon1, 40003, synack, 9, 2), true),
				in(tcp(mon1, 40003, pay1, 35001, syn, 1, 0), false), // its neighbour is not
			},
			answers: 2,
		},
		{
			name: "a peer's PORT2_RESP makes its port an Erlang port for dialling out",
			steps: []step{
				// pay-1 may not reach monitoring at all: even a learned
				// port is denied (the rule is one way).
				out(tcp(pay1, 40010, mon1, 4369, syn, 1, 0), false),
			},
			resets: 1,
		},
		{
			name: "an exposed port takes TCP and UDP from the same network, not across networks",
			steps: []step{
				in(tcp(pay2, 40000, pay1, 9100, syn, 1, 0), true),
				in(udp(pay2, 5000, pay1, 9100), true),
				out(udp(pay1, 9100, pay2, 5000), true),
				in(udp(pay2, 5000, pay1, 9101), false),
				in(udp(mon1, 5000, pay1, 9100), false),
			},
		},
		{
			name: "outbound UDP and its replies; an unsolicited datagram is not a reply",
			steps: []step{
				out(udp(pay1, 5353, pay2, 53), true),
				in(udp(pay2, 53, pay1, 5353), true),
				in(udp(pay2, 53, pay1, 5354), false),
			},
		},
		{
			name: "packets of no flow are dropped; a local reset passes",
			steps: []step{
				in(tcp(pay2, 40000, pay1, 4369, ack, 1, 1), false),
				in(tcp(pay2, 40000, pay1, 4369, synack, 1, 1), false),
				out(tcp(pay1, 4369, pay2, 40000, ack, 1, 1), false),
				out(tcp(pay1, 4369, pay2, 40000, rstack, 1, 1), true),
			},
		},
		{
			name: "a SYN from the answering side of a flow is refused",
			steps: []step{
				out(tcp(pay1, 40000, pay2, 80, syn, 1, 0), true),
				in(tcp(pay2, 80, pay1, 40000, syn, 1, 0), false),
			},
		},
		{
			name: "after a reset the same ports are judged anew",
			steps: []step{
				in(tcp(pay2, 40000, pay1, 4369, syn, 1, 0), true),
				out(tcp(pay1, 4369, pay2, 40000, rstack, 0, 2), true),
				in(tcp(pay2, 40000, pay1, 4369, syn, 5, 0), true),
			},
		},
		{
			name: "ping within a network and its reply; not across networks",
			steps: []step{
				in(icmp(pay2, pay1, icmpEchoRequest, 7, nil), true),
				out(icmp(pay1, pay2, icmpEchoReply, 7, nil), true),
				in(icmp(pay2, pay1, icmpEchoReply, 8, nil), false), // unsolicited reply
				in(icmp(mon1, pay1, icmpEchoRequest, 9, nil), false),
				out(icmp(pay1, mon1, icmpEchoRequest, 9, nil), false),
			},
		},
		{
			name: "ICMP errors pass for a known flow only",
			steps: []step{
				out(udp(pay1, 5353, pay2, 53), true),
				in(icmp(pay2, pay1, icmpUnreachable, 0, udp(pay1, 5353, pay2, 53)), true),
				in(icmp(pay2, pay1, icmpUnreachable, 0, udp(pay1, 5353, pay2, 54)), false),
			},
		},
		{
			name: "spoofed, misaddressed, unknown, IPv6, fragmented and malformed packets are dropped",
			steps: []step{
				in(tcp(pay1, 40000, pay1, 4369, syn, 1, 0), false),  // from this host's own address
				in(tcp(pay2, 40000, pay2, 4369, syn, 1, 0), false),  // not to this host
				in(tcp(alien, 40000, pay1, 4369, syn, 1, 0), false), // no such peer
				out(tcp(pay2, 40000, mon1, 4369, syn, 1, 0), false), // not from this host
				in(ipv6(), false),
				in(fragment(tcp(pay2, 40000, pay1, 4369, syn, 1, 0)), false),
				in(tcp(pay2, 40000, pay1, 4369, syn, 1, 0)[:30], false),
				in(ip(47, pay2, pay1, make([]byte, 8)), false), // GRE
			},
			logHas: []string{"unknown address", "IP fragment", "protocol not carried"},
		},
	}
	runFilterCases(t, loadSnap(t, "testdata/peers.yaml", nil), tests)
}

func runFilterCases(t *testing.T, snap *peers.Snapshot, tests []filterCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			dev := &fakeTUN{}
			f := New(dev, Config{Logger: slog.New(slog.NewTextHandler(&logBuf, nil))}, snap)
			answers := 0
			for i, s := range tt.steps {
				if got := runStep(t, f, dev, s); got != s.pass {
					t.Fatalf("step %d (%s): passed %v, want %v\nlog:\n%s", i, s.dir, got, s.pass, logBuf.String())
				}
				for _, a := range takeAnswers(t, f) {
					checkAnswer(t, a, s.pkt)
					answers++
				}
			}
			if answers != tt.answers {
				t.Errorf("%d resets sent to peers, want %d", answers, tt.answers)
			}
			resets := 0
			for _, w := range dev.take() {
				var p packet
				if !parse(w, &p) || p.proto != protoTCP || p.flags&tcpRST == 0 {
					t.Errorf("the filter wrote a packet that is not a reset: % x", w)
					continue
				}
				if checksum(w[:20], 0) != 0xffff {
					t.Errorf("reset has a bad IP checksum")
				}
				resets++
			}
			if resets != tt.resets {
				t.Errorf("%d resets written to the kernel, want %d", resets, tt.resets)
			}
			for _, want := range tt.logHas {
				if !strings.Contains(logBuf.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, logBuf.String())
				}
			}
			if tt.logNone && logBuf.Len() > 0 {
				t.Errorf("unexpected log:\n%s", logBuf.String())
			}
		})
	}
}

// runStep sends one packet through f the way WireGuard would and reports
// whether it came out on the other side. Resets the filter itself writes
// stay in dev for the caller.
func runStep(t *testing.T, f *Filter, dev *fakeTUN, s step) bool {
	t.Helper()
	const off = 16
	if s.dir == peers.Inbound {
		before := len(dev.written)
		buf := append(make([]byte, off), s.pkt...)
		if _, err := f.Write([][]byte{buf}, off); err != nil {
			t.Fatal(err)
		}
		dev.mu.Lock()
		defer dev.mu.Unlock()
		for _, w := range dev.written[before:] {
			if bytes.Equal(w, s.pkt) {
				dev.written = append(dev.written[:before], dev.written[before+1:]...)
				return true
			}
		}
		return false
	}
	dev.mu.Lock()
	dev.toRead = append(dev.toRead, s.pkt)
	dev.mu.Unlock()
	bufs := [][]byte{make([]byte, off+2048)}
	sizes := []int{0}
	n, err := f.Read(bufs, sizes, off)
	if err != nil || n != 1 {
		t.Fatalf("Read: %d, %v", n, err)
	}
	return sizes[0] > 0
}

// takeAnswers returns what the filter sends to peers of its own accord:
// the packets a Read yields when the kernel has nothing to send.
func takeAnswers(t *testing.T, f *Filter) [][]byte {
	t.Helper()
	const off = 16
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, off+128)
	}
	sizes := make([]int, len(bufs))
	n, err := f.Read(bufs, sizes, off)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := 0; i < n; i++ {
		out = append(out, bufs[i][off:off+sizes[i]])
	}
	return out
}

// checkAnswer checks that a is the reset a kernel sends for the refused
// packet pkt (a SYN, or a connection's first segment): from its destination
// back to its source, RST|ACK acknowledging it, with valid checksums.
func checkAnswer(t *testing.T, a, pkt []byte) {
	t.Helper()
	var r, p packet
	if !parse(a, &r) || !parse(pkt, &p) {
		t.Fatalf("answer or step does not parse: % x", a)
	}
	if r.proto != protoTCP || r.flags != rstack || r.src != p.dst || r.dst != p.src || r.sport != p.dport || r.dport != p.sport || r.ack != p.seq+segLen(&p) {
		t.Errorf("answer %+v is not the reset of %+v", r, p)
	}
	pseudo := checksum(a[12:20], uint32(protoTCP)+uint32(len(a)-20))
	if checksum(a[:20], 0) != 0xffff || checksum(a[20:], uint32(pseudo)) != 0xffff {
		t.Errorf("answer has a bad checksum: % x", a)
	}
}

func TestTCPResetChecksum(t *testing.T) {
	// A reset the kernel accepts needs a valid TCP checksum: check it
	// against the sum over the pseudo-header, which must fold to 0xffff.
	var p packet
	if !parse(tcp(pay1, 40001, mon1, 4369, syn, 7, 0), &p) {
		t.Fatal("parse")
	}
	b := make([]byte, 40)
	n := tcpReset(b, &p, 0, 8)
	var r packet
	if !parse(b[:n], &r) {
		t.Fatal("reset does not parse")
	}
	if r.src != mon1 || r.dst != pay1 || r.sport != 4369 || r.dport != 40001 || r.ack != 8 || r.flags != rstack {
		t.Fatalf("reset %+v", r)
	}
	pseudo := checksum(b[12:20], uint32(protoTCP)+20)
	if got := checksum(b[20:40], uint32(pseudo)); got != 0xffff {
		t.Fatalf("TCP checksum folds to %#x", got)
	}
}

func TestApplyRevokes(t *testing.T) {
	snap := loadSnap(t, "testdata/peers.yaml", nil)
	var logBuf bytes.Buffer
	dev := &fakeTUN{}
	f := New(dev, Config{Logger: slog.New(slog.NewTextHandler(&logBuf, nil))}, snap)
	// mon-1 looks pay-1's node up and connects to it; pay-2 talks to pay-1.
	hello := erldist.AppendSendName(nil, "app@10.77.2.1")
	next := 1001 + uint32(len(hello)) // mon-1's next sequence number after its send_name
	for i, s := range []step{
		in(tcp(mon1, 40002, pay1, 4369, syn, 1, 0), true),
		out(tcp(pay1, 4369, mon1, 40002, synack, 9, 2), true),
		out(tcp(pay1, 4369, mon1, 40002, ack, 10, 6, port2RespBytes(35000)...), true),
		in(tcp(mon1, 40003, pay1, 35000, syn, 1000, 0), true),
		out(tcp(pay1, 35000, mon1, 40003, synack, 5000, 1001), true),
		in(tcp(mon1, 40003, pay1, 35000, ack, 1001, 5001, hello...), true),
		out(tcp(pay1, 35000, mon1, 40003, ack, 5001, next), true),
		in(tcp(pay2, 40004, pay1, 4369, syn, 1, 0), true),
	} {
		if got := runStep(t, f, dev, s); got != s.pass {
			t.Fatalf("step %d: passed %v", i, got)
		}
	}
	dev.take()
	// The rule goes: monitoring may no longer reach payments.
	f.Apply(loadSnap(t, "testdata/peers.yaml", func(s string) string {
		return strings.Replace(s, "  - from: monitoring\n    to: payments\n    ports: [erlang]\n", "", 1)
	}))
	var resets []packet
	for _, w := range dev.take() {
		var p packet
		if parse(w, &p) {
			resets = append(resets, p)
		}
	}
	// Both mon-1 flows are revoked; each gets a reset at the local socket's
	// expected sequence number.
	if len(resets) != 2 {
		t.Fatalf("%d resets, want 2: %+v", len(resets), resets)
	}
	for _, r := range resets {
		if r.flags&tcpRST == 0 || r.src != mon1 || r.dst != pay1 {
			t.Errorf("not a reset from mon-1 to pay-1: %+v", r)
		}
		if r.sport == 40003 && r.seq != next {
			t.Errorf("reset of the dist connection has seq %d, want %d (what pay-1 acknowledged last)", r.seq, next)
		}
	}
	if !strings.Contains(logBuf.String(), "packetfilter: closed") || !strings.Contains(logBuf.String(), "deny default") {
		t.Errorf("revocation not logged:\n%s", logBuf.String())
	}
	for i, s := range []step{
		in(tcp(mon1, 40003, pay1, 35000, ack, next, 5001, 'x'), true), // to the kernel, which resets it
		out(tcp(pay1, 35000, mon1, 40003, ack, 5001, next+1), false),
		out(tcp(pay1, 35000, mon1, 40003, rst, 5001, 0), true),
		in(tcp(mon1, 40005, pay1, 35000, syn, 1, 0), false), // new connections are denied
		in(tcp(pay2, 40004, pay1, 4369, ack, 2, 1), true),   // same network untouched
	} {
		if got := runStep(t, f, dev, s); got != s.pass {
			t.Fatalf("after reload, step %d: passed %v, want %v", i, got, s.pass)
		}
	}
	st := f.Stats()
	if st["mon-1"].Revoked != 2 || st["pay-2"].Flows != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestReadBlanksRefusedKeepsOthers(t *testing.T) {
	snap := loadSnap(t, "testdata/peers.yaml", nil)
	dev := &fakeTUN{toRead: [][]byte{
		tcp(pay1, 40000, pay2, 4369, syn, 1, 0),
		tcp(pay1, 40001, mon1, 4369, syn, 1, 0),
		udp(pay1, 5000, pay2, 53),
	}}
	f := New(dev, Config{Logger: slog.New(slog.DiscardHandler)}, snap)
	const off = 16
	bufs := make([][]byte, 3)
	for i := range bufs {
		bufs[i] = make([]byte, off+256)
	}
	sizes := make([]int, 3)
	n, err := f.Read(bufs, sizes, off)
	if err != nil || n != 3 {
		t.Fatalf("Read: %d %v", n, err)
	}
	if sizes[0] == 0 || sizes[1] != 0 || sizes[2] == 0 {
		t.Fatalf("sizes %v: want the packet to mon-1 blanked only", sizes)
	}
}

// pipeTUN's Read blocks on a pipe, as the kernel TUN device's does on its
// file: answers must wake it through the file's read deadline.
type pipeTUN struct {
	fakeTUN
	r *os.File
}

func (d *pipeTUN) File() *os.File { return d.r }

func (d *pipeTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := d.r.Read(bufs[0][offset:])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	return 1, nil
}

func TestAnswerWakesBlockedRead(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	dev := &pipeTUN{r: r}
	f := New(dev, Config{Logger: slog.New(slog.DiscardHandler)}, loadSnap(t, "testdata/peers.yaml", nil))
	if f.wake == nil {
		t.Fatal("a pollable device file was not taken for waking reads")
	}
	type result struct {
		pkt []byte
		err error
	}
	read := func() <-chan result {
		ch := make(chan result, 1)
		go func() {
			const off = 16
			bufs := [][]byte{make([]byte, off+2048)}
			sizes := []int{0}
			n, err := f.Read(bufs, sizes, off)
			if n != 1 {
				ch <- result{nil, fmt.Errorf("Read: %d packets, %v", n, err)}
				return
			}
			ch <- result{bufs[0][off : off+sizes[0]], err}
		}()
		return ch
	}
	wait := func(ch <-chan result) result {
		t.Helper()
		select {
		case res := <-ch:
			if res.err != nil {
				t.Fatal(res.err)
			}
			return res
		case <-time.After(10 * time.Second):
			t.Fatal("Read did not return")
			return result{}
		}
	}

	// A Read waiting for the kernel returns the reset of a refused SYN.
	pending := read()
	denied := tcp(mon1, 40000, pay1, 22, syn, 41, 0)
	if _, err := f.Write([][]byte{append(make([]byte, 16), denied...)}, 16); err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, wait(pending).pkt, denied)

	// The deadline is cleared: the next Read gets what the kernel sends.
	pending = read()
	outPkt := tcp(pay1, 40001, pay2, 4369, syn, 1, 0)
	if _, err := w.Write(outPkt); err != nil {
		t.Fatal(err)
	}
	if got := wait(pending).pkt; !bytes.Equal(got, outPkt) {
		t.Fatalf("after the answer, Read returned % x, want the kernel's packet", got)
	}
}

// withNodes is the fixture with the monitoring rule limited to node app.
func withNodes(s string) string {
	return strings.Replace(s, "    ports: [erlang]\n", "    ports: [erlang]\n    nodes: [app]\n", 1)
}

// TestFilterErlangNames: nodes lists and the send_name check, judged on
// the first segment a peer sends on an Erlang port. pay-1's epmd has app
// (port 35000) and secret (36000); mon-1 may reach app only; pay-2 (same
// network) every node.
func TestFilterErlangNames(t *testing.T) {
	// lookup is a peer's PORT_PLEASE2 for node and epmd's answer with port.
	lookup := func(from netip.Addr, sport uint16, node string, port uint16) []step {
		req := epmdReq(erldist.TagPortPlease2Req, node)
		return []step{
			in(tcp(from, sport, pay1, 4369, syn, 100, 0), true),
			out(tcp(pay1, 4369, from, sport, synack, 900, 101), true),
			in(tcp(from, sport, pay1, 4369, ack, 101, 901, req...), true),
			out(tcp(pay1, 4369, from, sport, ack, 901, 101+uint32(len(req)), port2RespFor(node, port)...), true),
		}
	}
	// dial is a connection to a dist port whose first segment is first.
	dial := func(from netip.Addr, sport, port uint16, first []byte, pass bool) []step {
		return []step{
			in(tcp(from, sport, pay1, port, syn, 500, 0), true),
			out(tcp(pay1, port, from, sport, synack, 7000, 501), true),
			in(tcp(from, sport, pay1, port, ack, 501, 7001), true),
			in(tcp(from, sport, pay1, port, ack, 501, 7001, first...), pass),
		}
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []filterCase{
		{
			name:  "the allowed node: looked up, dialled, named as mon-1's",
			steps: cat(lookup(mon1, 40000, "app", 35000), dial(mon1, 40001, 35000, erldist.AppendSendName(nil, "app@10.77.2.1"), true)),
		},
		{
			name: "PORT_PLEASE2 for a node the rule leaves out: both ends reset, nothing more passes",
			steps: cat(lookup(mon1, 40000, "secret", 36000)[:2], []step{
				in(tcp(mon1, 40000, pay1, 4369, ack, 101, 901, epmdReq(erldist.TagPortPlease2Req, "secret")...), false),
				in(tcp(mon1, 40000, pay1, 4369, ack, 108, 901, 'x'), false),
				out(tcp(pay1, 4369, mon1, 40000, ack, 901, 101), false),
				out(tcp(pay1, 4369, mon1, 40000, rstack, 901, 101), true), // the kernel's own reset
			}),
			resets: 1, answers: 1,
			logHas: []string{"PORT_PLEASE2 refused", "deny node secret"},
		},
		{
			name:   "an EPMD request over erldist.MaxRequestBody, whole in one segment: reset, as the userspace relay refuses it",
			steps:  cat(lookup(mon1, 40000, "x", 1)[:2], []step{in(tcp(mon1, 40000, pay1, 4369, ack, 101, 901, epmdReq(erldist.TagPortPlease2Req, strings.Repeat("a", erldist.MaxRequestBody))...), false)}),
			resets: 1, answers: 1,
			logHas: []string{"EPMD request refused", "request too large"},
		},
		{
			name:   "NAMES under a rule with nodes: reset",
			steps:  cat(lookup(mon1, 40000, "x", 1)[:2], []step{in(tcp(mon1, 40000, pay1, 4369, ack, 101, 901, epmdReq(erldist.TagNamesReq, "")...), false)}),
			resets: 1, answers: 1,
			logHas: []string{"NAMES refused", "only nodes [app]"},
		},
		{
			name: "same network: any node, NAMES too",
			steps: cat(lookup(pay2, 40000, "secret", 36000),
				[]step{
					in(tcp(pay2, 40001, pay1, 4369, syn, 1, 0), true),
					in(tcp(pay2, 40001, pay1, 4369, ack, 2, 1, epmdReq(erldist.TagNamesReq, "")...), true),
				},
				dial(pay2, 40002, 36000, erldist.AppendSendName(nil, "secret@pay-2.nodewire"), true)),
		},
		{
			name: "a dist port registered to a node the rule leaves out: refused at the SYN with a reset",
			steps: cat(lookup(pay2, 40000, "secret", 36000), []step{
				in(tcp(mon1, 40001, pay1, 36000, syn, 500, 0), false),
			}),
			answers: 1,
			logHas:  []string{"dir=in", "from=mon-1", "port=36000", "deny node secret"},
		},
		{
			// The port is exposed too: still the node's (peers.File.Judge).
			name: "an exposed port registered to a node the rule leaves out: refused at the SYN",
			steps: cat(lookup(pay2, 40000, "secret", 9100), []step{
				in(tcp(mon1, 40001, pay1, 9100, syn, 500, 0), false),
			}),
			answers: 1,
			logHas:  []string{"dir=in", "from=mon-1", "port=9100", "deny node secret"},
		},
		{
			name:   "send_name naming another peer's node: both ends reset",
			steps:  cat(lookup(mon1, 40000, "app", 35000), dial(mon1, 40001, 35000, erldist.AppendSendName(nil, "app@10.77.1.2"), false)),
			resets: 1, answers: 1,
			logHas: []string{"distribution handshake refused", `node name \"app@10.77.1.2\" is not peer mon-1's`},
		},
		{
			name:   "send_name naming this host's own node: reset",
			steps:  cat(lookup(mon1, 40000, "app", 35000), dial(mon1, 40001, 35000, erldist.AppendSendName(nil, "app@pay-1.nodewire"), false)),
			resets: 1, answers: 1,
		},
		{
			name:   "send_name cut short: reset",
			steps:  cat(lookup(mon1, 40000, "app", 35000), dial(mon1, 40001, 35000, erldist.AppendSendName(nil, "app@10.77.2.1")[:9], false)),
			resets: 1, answers: 1,
			logHas: []string{"send_name: truncated"},
		},
		{
			name:   "send_name with more after it: reset",
			steps:  cat(lookup(mon1, 40000, "app", 35000), dial(mon1, 40001, 35000, append(erldist.AppendSendName(nil, "app@10.77.2.1"), 0, 1, 'x'), false)),
			resets: 1, answers: 1,
		},
		{
			name:  "TLS distribution: no clear-text name, passes",
			steps: cat(lookup(mon1, 40000, "app", 35000), dial(mon1, 40001, 35000, []byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5}, true)),
		},
		{
			name: "a first segment not at the stream's start: reset",
			steps: cat(lookup(mon1, 40000, "app", 35000), []step{
				in(tcp(mon1, 40001, pay1, 35000, syn, 500, 0), true),
				out(tcp(pay1, 35000, mon1, 40001, synack, 7000, 501), true),
				in(tcp(mon1, 40001, pay1, 35000, ack, 601, 7001, erldist.AppendSendName(nil, "app@10.77.2.1")...), false),
			}),
			resets: 1, answers: 1,
			logHas: []string{"out of order"},
		},
		{
			name: "an EPMD request cut short, or data on the SYN: refused",
			steps: cat(lookup(mon1, 40000, "app", 1)[:2], []step{
				in(tcp(mon1, 40000, pay1, 4369, ack, 101, 901, epmdReq(erldist.TagPortPlease2Req, "app")[:4]...), false),
				in(tcp(mon1, 40002, pay1, 4369, syn, 1, 0, epmdReq(erldist.TagNamesReq, "")...), false),
			}),
			resets: 1, answers: 1,
			logHas: []string{"EPMD request not whole", "data on a SYN"},
		},
		{
			name: "other EPMD requests go to epmd, which refuses them from a peer itself",
			steps: cat(lookup(mon1, 40000, "x", 1)[:2], []step{
				in(tcp(mon1, 40000, pay1, 4369, ack, 101, 901, epmdReq(115, "app")...), true), // STOP
			}),
		},
	}
	runFilterCases(t, loadSnap(t, "testdata/peers.yaml", withNodes), tests)
}

// TestFirstSegmentResetsBothEnds checks the two resets of a refused first
// segment: the local socket's at the sequence number it expects next, the
// peer's at the one it expects from pay-1.
func TestFirstSegmentResetsBothEnds(t *testing.T) {
	dev := &fakeTUN{}
	f := New(dev, Config{Logger: slog.New(slog.DiscardHandler)}, loadSnap(t, "testdata/peers.yaml", withNodes))
	req := epmdReq(erldist.TagPortPlease2Req, "secret")
	for i, s := range []step{
		in(tcp(mon1, 40000, pay1, 4369, syn, 100, 0), true),
		out(tcp(pay1, 4369, mon1, 40000, synack, 900, 101), true),
		in(tcp(mon1, 40000, pay1, 4369, ack, 101, 901), true),
		in(tcp(mon1, 40000, pay1, 4369, ack, 101, 901, req...), false),
	} {
		if got := runStep(t, f, dev, s); got != s.pass {
			t.Fatalf("step %d: passed %v", i, got)
		}
	}
	var local, peer packet
	if w := dev.take(); len(w) != 1 || !parse(w[0], &local) {
		t.Fatalf("written to the kernel: %d packets, want one reset", len(w))
	}
	if local.src != mon1 || local.sport != 40000 || local.dst != pay1 || local.dport != 4369 || local.flags&tcpRST == 0 || local.seq != 101 {
		t.Errorf("reset to the local socket %+v: want mon-1:40000 -> pay-1:4369 seq 101", local)
	}
	a := takeAnswers(t, f)
	if len(a) != 1 || !parse(a[0], &peer) {
		t.Fatalf("sent to the peer: %d packets, want one reset", len(a))
	}
	if peer.src != pay1 || peer.dst != mon1 || peer.dport != 40000 || peer.flags&tcpRST == 0 || peer.seq != 901 || peer.ack != 101+uint32(len(req)) {
		t.Errorf("reset to the peer %+v: want seq 901 ack %d", peer, 101+len(req))
	}
}
