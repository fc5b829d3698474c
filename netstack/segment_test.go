package netstack

import (
	"bytes"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

var (
	segSrc = tcpip.AddrFrom4([4]byte{10, 77, 1, 1})
	segDst = tcpip.AddrFrom4([4]byte{10, 77, 2, 1})
)

// superSegment builds what gVisor's TCP hands a host-GSO link: one IPv4
// packet with the whole payload, flags on it, and only the pseudo-header
// sum in the TCP checksum field.
func superSegment(payload []byte, mss int, flags header.TCPFlags, opts []byte) *stack.PacketBuffer {
	thl := header.TCPMinimumSize + len(opts)
	hdr := make([]byte, header.IPv4MinimumSize+thl)
	total := len(hdr) + len(payload)
	ip := header.IPv4(hdr)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(total), ID: 4242, Flags: header.IPv4FlagDontFragment,
		TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: segSrc, DstAddr: segDst})
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(hdr[header.IPv4MinimumSize:])
	tcp.Encode(&header.TCPFields{SrcPort: 40000, DstPort: 4369, SeqNum: 0xfffff000, AckNum: 77,
		DataOffset: uint8(thl), Flags: flags, WindowSize: 5000})
	copy(tcp[header.TCPMinimumSize:], opts)
	tcp.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, segSrc, segDst, uint16(thl+len(payload))))
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(append(hdr, payload...))})
	pkt.GSOOptions = stack.GSO{Type: stack.GSOTCPv4, NeedsCsum: true, CsumOffset: header.TCPChecksumOffset,
		MSS: uint16(mss), L3HdrLen: header.IPv4MinimumSize, MaxSize: linkGSOMaxSize}
	return pkt
}

// checkWirePacket verifies p as a receiver that trusts nothing would.
func checkWirePacket(t *testing.T, p []byte) header.TCP {
	t.Helper()
	ip := header.IPv4(p)
	if !ip.IsValid(len(p)) || int(ip.TotalLength()) != len(p) {
		t.Fatalf("bad IPv4 header: total length %d, packet %d", ip.TotalLength(), len(p))
	}
	if !ip.IsChecksumValid() {
		t.Fatal("bad IPv4 checksum")
	}
	tcp := header.TCP(ip.Payload())
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(tcp)))
	if checksum.Checksum(tcp, sum) != 0xffff {
		t.Fatal("bad TCP checksum")
	}
	return tcp
}

func TestSegmenterCutsSuperSegments(t *testing.T) {
	timestamps := []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}
	for _, tc := range []struct {
		name    string
		size    int // payload bytes
		mss     int
		flags   header.TCPFlags
		opts    []byte
		batch   int // bufs per Read
		wantSeg int
	}{
		{"exact multiple", 4 * 1368, 1368, header.TCPFlagAck | header.TCPFlagPsh, timestamps, 64, 4},
		{"short tail", 10*1380 + 7, 1380, header.TCPFlagAck | header.TCPFlagPsh, nil, 64, 11},
		{"fin on last only", 3*1380 + 1, 1380, header.TCPFlagAck | header.TCPFlagPsh | header.TCPFlagFin, nil, 64, 4},
		{"largest, over several reads", linkGSOMaxSize - 200, 1368, header.TCPFlagAck | header.TCPFlagPsh, timestamps, 7, 48},
		{"one segment: checksum only", 900, 1368, header.TCPFlagAck | header.TCPFlagPsh, timestamps, 64, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := make([]byte, tc.size)
			for i := range payload {
				payload[i] = byte(i*7 + i>>8)
			}
			d := newTUN(DefaultMTU)
			defer d.Close()
			var list stack.PacketBufferList
			pkt := superSegment(payload, tc.mss, tc.flags, tc.opts)
			list.PushBack(pkt)
			if n, err := d.link.WritePackets(list); err != nil || n != 1 {
				t.Fatalf("WritePackets: %d, %v", n, err)
			}
			pkt.DecRef()

			const offset = 16
			bufs := make([][]byte, tc.batch)
			for i := range bufs {
				bufs[i] = make([]byte, offset+DefaultMTU+100)
			}
			sizes := make([]int, tc.batch)
			var got []byte
			var segs []header.TCP
			for len(got) < len(payload) {
				n, err := d.Read(bufs, sizes, offset)
				if err != nil || n == 0 {
					t.Fatalf("Read after %d of %d bytes: %d, %v", len(got), len(payload), n, err)
				}
				for i := range n {
					p := bufs[i][offset : offset+sizes[i]]
					if len(p) > DefaultMTU {
						t.Fatalf("segment of %d bytes exceeds the MTU", len(p))
					}
					tcp := checkWirePacket(t, p)
					if want := uint32(0xfffff000) + uint32(len(got)); tcp.SequenceNumber() != want {
						t.Fatalf("segment %d: seq %#x, want %#x", len(segs), tcp.SequenceNumber(), want)
					}
					if !bytes.Equal(tcp[header.TCPMinimumSize:tcp.DataOffset()], tc.opts) {
						t.Fatalf("segment %d: options not copied", len(segs))
					}
					got = append(got, tcp.Payload()...)
					segs = append(segs, append(header.TCP(nil), tcp...))
				}
			}
			if !bytes.Equal(got, payload) {
				t.Fatal("payload differs after cutting")
			}
			if len(segs) != tc.wantSeg {
				t.Fatalf("%d segments, want %d", len(segs), tc.wantSeg)
			}
			for i, tcp := range segs {
				want := tc.flags
				if i < len(segs)-1 {
					want &^= header.TCPFlagFin | header.TCPFlagPsh
				}
				if tcp.Flags() != want {
					t.Errorf("segment %d: flags %v, want %v", i, tcp.Flags(), want)
				}
				if len(tcp.Payload()) > tc.mss {
					t.Errorf("segment %d: %d payload bytes > MSS %d", i, len(tcp.Payload()), tc.mss)
				}
			}
			if d.link.queued() != 0 || d.seg.pending() {
				t.Error("segments left over")
			}
		})
	}
}

func TestSegmenterDoesNotAllocate(t *testing.T) {
	d := newTUN(DefaultMTU)
	defer d.Close()
	payload := make([]byte, 40*1368)
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 2000)
	}
	sizes := make([]int, 64)
	pkts := make([]*stack.PacketBuffer, 101)
	for i := range pkts {
		pkts[i] = superSegment(payload, 1368, header.TCPFlagAck|header.TCPFlagPsh, nil)
	}
	lists := make([]stack.PacketBufferList, len(pkts))
	for i, pkt := range pkts {
		lists[i].PushBack(pkt)
	}
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		d.link.WritePackets(lists[i])
		pkts[i].DecRef()
		i++
		if n, err := d.Read(bufs, sizes, 0); n != 40 || err != nil {
			t.Fatalf("Read: %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per super-segment", allocs)
	}
}

func BenchmarkSegmenter(b *testing.B) {
	d := newTUN(DefaultMTU)
	defer d.Close()
	payload := make([]byte, 47*1368)
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 2000)
	}
	sizes := make([]int, 64)
	pkt := superSegment(payload, 1368, header.TCPFlagAck|header.TCPFlagPsh, nil)
	defer pkt.DecRef()
	var list stack.PacketBufferList
	list.PushBack(pkt)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		d.link.WritePackets(list)
		if n, _ := d.Read(bufs, sizes, 0); n != 47 {
			b.Fatalf("Read: %d", n)
		}
	}
}

// TestTUNWriteCoalesces checks the receive side: the segments one
// super-segment was cut into reach the stack as one packet again (GRO).
func TestTUNWriteCoalesces(t *testing.T) {
	from := newTUN(DefaultMTU)
	defer from.Close()
	var list stack.PacketBufferList
	pkt := superSegment(make([]byte, 20*1368), 1368, header.TCPFlagAck|header.TCPFlagPsh, nil)
	list.PushBack(pkt)
	from.link.WritePackets(list)
	pkt.DecRef()
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 2000)
	}
	sizes := make([]int, 64)
	n, err := from.Read(bufs, sizes, 0)
	if err != nil || n != 20 {
		t.Fatalf("Read: %d, %v", n, err)
	}
	for i := range n {
		bufs[i] = bufs[i][:sizes[i]]
	}

	to := newTUN(DefaultMTU)
	defer to.Close()
	s := stack.New(stack.Options{})
	defer s.Destroy()
	if err := s.CreateNIC(1, to.link); err != nil {
		t.Fatal(err)
	}
	if _, err := to.Write(bufs[:n], 0); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().NICs.Rx.Packets.Value(); got != 1 {
		t.Errorf("stack received %d packets for 20 segments of one flow, want 1", got)
	}
}
