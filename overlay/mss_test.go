package overlay

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.zx2c4.com/wireguard/tun"
)

// tcpPacket builds an IPv4 TCP segment from src to dst with flags, TCP
// options opts (padded to 4 bytes) and payload, with a valid checksum.
func tcpPacket(src, dst string, flags byte, opts []byte, payload int) []byte {
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	thl := 20 + len(opts)
	total := 20 + thl + payload
	p := make([]byte, total)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(total))
	p[6] = 0x40 // DF
	p[8], p[9] = 64, 6
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	tcp := p[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 4369)
	tcp[12] = byte(thl/4) << 4
	tcp[13] = flags
	copy(tcp[20:], opts)
	for i := range payload {
		tcp[thl+i] = byte(i)
	}
	tcpChecksum(p[12:20], tcp)
	return p
}

// checksumOK verifies the TCP checksum independently of tcpChecksum: the
// one's-complement sum over pseudo-header and segment must be all ones.
func checksumOK(p []byte) bool {
	tcp := p[20:]
	sum := uint32(6) + uint32(len(tcp))
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for i := 0; i+1 < len(tcp); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(tcp[i:]))
	}
	if len(tcp)%2 == 1 {
		sum += uint32(tcp[len(tcp)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}

func mssOf(p []byte) int {
	opts := p[40 : 20+int(p[32]>>4)*4]
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0:
			return -1
		case 1:
			i++
			continue
		case 2:
			return int(binary.BigEndian.Uint16(opts[i+2:]))
		}
		i += int(opts[i+1])
	}
	return -1
}

const (
	syn    = 0x02
	synAck = 0x12
	ack    = 0x10
)

func TestClampMSS(t *testing.T) {
	mss := func(v uint16) []byte { return []byte{2, 4, byte(v >> 8), byte(v)} }
	linuxSYN := append(mss(1380), 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7) // MSS, SACK-perm, TS, NOP, WS
	oddMSS := append([]byte{1}, mss(1460)...)                                      // the value at an odd offset
	for _, tc := range []struct {
		name    string
		pkt     []byte
		clamp   uint16
		changed bool
		want    int
	}{
		{"SYN, MSS first", tcpPacket("10.77.1.1", "10.77.1.2", syn, linuxSYN, 0), 1300, true, 1300},
		{"SYN-ACK", tcpPacket("10.77.1.1", "10.77.1.2", synAck, mss(1380), 0), 1180, true, 1180},
		{"MSS after a NOP (odd offset)", tcpPacket("10.77.1.1", "10.77.1.2", syn, oddMSS, 0), 1300, true, 1300},
		{"MSS after SACK-perm", tcpPacket("10.77.1.1", "10.77.1.2", syn, append([]byte{4, 2}, mss(8960)...), 0), 1300, true, 1300},
		{"already small enough", tcpPacket("10.77.1.1", "10.77.1.2", syn, mss(1200), 0), 1300, false, 1200},
		{"no MSS option", tcpPacket("10.77.1.1", "10.77.1.2", syn, []byte{1, 1, 4, 2}, 0), 1300, false, -1},
		{"SYN with data", tcpPacket("10.77.1.1", "10.77.1.2", syn, mss(1380), 33), 1300, true, 1300},
		{"bad option length", tcpPacket("10.77.1.1", "10.77.1.2", syn, []byte{8, 40, 2, 4, 5, 100}, 0), 1300, false, -1},
	} {
		p := tc.pkt
		ihl, ok := tcpSYN(p)
		if !ok {
			t.Fatalf("%s: not seen as a SYN", tc.name)
		}
		if got := clampMSS(p, ihl, tc.clamp); got != tc.changed {
			t.Errorf("%s: changed %v, want %v", tc.name, got, tc.changed)
		}
		if got := mssOf(p); got != tc.want && !(tc.want == -1 && got == -1) {
			t.Errorf("%s: MSS %d, want %d", tc.name, got, tc.want)
		}
		if !checksumOK(p) {
			t.Errorf("%s: bad TCP checksum after clamping", tc.name)
		}
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"ACK", tcpPacket("10.77.1.1", "10.77.1.2", ack, nil, 100)},
		{"fragment", func() []byte { p := tcpPacket("10.77.1.1", "10.77.1.2", syn, mss(1380), 0); p[6] = 0x20; return p }()},
		{"UDP", func() []byte { p := tcpPacket("10.77.1.1", "10.77.1.2", syn, mss(1380), 0); p[9] = 17; return p }()},
		{"IPv6", func() []byte { p := tcpPacket("10.77.1.1", "10.77.1.2", syn, mss(1380), 0); p[0] = 0x60; return p }()},
		{"short", []byte{0x45, 0, 0, 20}},
	} {
		if _, ok := tcpSYN(tc.pkt); ok {
			t.Errorf("%s: taken for a whole TCP SYN", tc.name)
		}
	}
}

// fakeTUN hands out the packets in in on Read and keeps what is written.
type fakeTUN struct {
	tun.Device
	in      [][]byte
	written [][]byte
}

func (f *fakeTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := copy(sizes, make([]int, len(f.in)))
	for i := range n {
		sizes[i] = copy(bufs[i][offset:], f.in[i])
	}
	return n, nil
}

func (f *fakeTUN) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		f.written = append(f.written, append([]byte(nil), b[offset:]...))
	}
	return len(bufs), nil
}

// The table is keyed by the peer's overlay address: the destination of what
// this host sends, the source of what it receives. Other peers' SYNs pass.
func TestMSSDeviceDirections(t *testing.T) {
	opt := []byte{2, 4, 0x05, 0x64} // MSS 1380
	me, near, other := "10.77.1.1", netip.MustParseAddr("10.77.1.2"), "10.77.1.3"
	fake := &fakeTUN{in: [][]byte{
		tcpPacket(me, near.String(), syn, opt, 0),
		tcpPacket(me, other, syn, opt, 0),
		tcpPacket(near.String(), me, ack, nil, 10), // not a SYN
	}}
	d := newMSSDevice(fake)
	// No table yet: nothing changes.
	const off = 16
	bufs := [][]byte{make([]byte, 1500), make([]byte, 1500), make([]byte, 1500)}
	sizes := make([]int, 3)
	if _, err := d.Read(bufs, sizes, off); err != nil {
		t.Fatal(err)
	}
	if got := mssOf(bufs[0][off : off+sizes[0]]); got != 1380 {
		t.Errorf("before any table: MSS %d, want 1380", got)
	}
	d.setPeers(map[netip.Addr]uint16{near: 1180})
	if _, err := d.Read(bufs, sizes, off); err != nil {
		t.Fatal(err)
	}
	if got := mssOf(bufs[0][off : off+sizes[0]]); got != 1180 {
		t.Errorf("outbound SYN to the peer: MSS %d, want 1180", got)
	}
	if got := mssOf(bufs[1][off : off+sizes[1]]); got != 1380 {
		t.Errorf("outbound SYN to another peer: MSS %d, want 1380", got)
	}
	in := make([]byte, off, 1500)
	in = append(in, tcpPacket(near.String(), me, synAck, opt, 0)...)
	out := make([]byte, off, 1500)
	out = append(out, tcpPacket(me, near.String(), synAck, opt, 0)...) // to the peer, yet arriving: not its SYN
	if _, err := d.Write([][]byte{in, out}, off); err != nil {
		t.Fatal(err)
	}
	if got := mssOf(fake.written[0]); got != 1180 || !checksumOK(fake.written[0]) {
		t.Errorf("inbound SYN-ACK from the peer: MSS %d (checksum ok %v), want 1180", got, checksumOK(fake.written[0]))
	}
	if got := mssOf(fake.written[1]); got != 1380 {
		t.Errorf("inbound SYN-ACK from another address: MSS %d, want 1380", got)
	}
}

func BenchmarkMSSDeviceRead(b *testing.B) {
	fake := &fakeTUN{}
	for range 64 {
		fake.in = append(fake.in, tcpPacket("10.77.1.1", "10.77.1.2", ack, nil, 1300))
	}
	d := newMSSDevice(fake)
	d.setPeers(map[netip.Addr]uint16{netip.MustParseAddr("10.77.1.2"): 1300})
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 1500)
	}
	sizes := make([]int, 64)
	b.ReportAllocs()
	for b.Loop() {
		d.Read(bufs, sizes, 0)
	}
}
