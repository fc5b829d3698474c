package netstack

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// segmenter turns the packets gVisor queues on the link into packets for
// the wire. Most pass through as they are; a TCP super-segment (host GSO) is
// cut into MSS-sized packets, each with its own IP length, IP ID, sequence
// number and checksums, as a NIC doing TSO would. A super-segment may span
// several Reads, so the segmenter keeps the rest for the next one.
//
// Only the TUN's reader uses it; it allocates nothing after newSegmenter.
type segmenter struct {
	buf  []byte // the super-segment being cut: IPv4 header, TCP header, payload
	size int    // bytes of buf in use
	hdr  int    // IPv4 + TCP header length
	mss  int
	off  int    // payload offset of the next segment
	id   uint16 // IP ID of the next segment
	drop uint64 // packets that could not be written: oversized or malformed
}

func newSegmenter() *segmenter {
	return &segmenter{buf: make([]byte, linkGSOMaxSize+header.IPv4MaximumHeaderSize+header.TCPHeaderMaximumSize)}
}

// pending reports whether segments of a super-segment wait to be written.
func (s *segmenter) pending() bool { return s.off < s.size-s.hdr }

// take consumes pkt (its reference too). A packet that needs no cutting is
// written to dst and its size returned; a super-segment is kept, to be
// written by next. It returns 0 when nothing was written to dst.
func (s *segmenter) take(dst []byte, pkt *stack.PacketBuffer) int {
	defer pkt.DecRef()
	gso := pkt.GSOOptions
	if gso.Type == stack.GSONone {
		n, ok := copyPacket(dst, pkt)
		if !ok {
			s.drop++
			return 0
		}
		return n
	}
	if gso.Type != stack.GSOTCPv4 {
		s.drop++ // the stack has no IPv6 address; nothing sends it
		return 0
	}
	size, ok := copyPacket(s.buf, pkt)
	if !ok {
		s.drop++
		return 0
	}
	p := s.buf[:size]
	ihl, thl, ok := tcp4Headers(p)
	if !ok {
		s.drop++
		return 0
	}
	mss := int(gso.MSS)
	if size-ihl-thl <= mss || mss == 0 {
		// One segment: only the checksum is left to do (it holds the
		// pseudo-header sum alone).
		if size > len(dst) {
			s.drop++
			return 0
		}
		copy(dst, p)
		finishTCP4(dst[:size], ihl, thl)
		return size
	}
	s.size, s.hdr, s.mss, s.off = size, ihl+thl, mss, 0
	s.id = binary.BigEndian.Uint16(p[4:6])
	return 0
}

// next writes the next segment of the kept super-segment to dst and
// returns its size, or 0 if dst is too small (the super-segment is then
// dropped: TCP retransmits).
func (s *segmenter) next(dst []byte) int {
	payload := s.size - s.hdr
	n := min(s.mss, payload-s.off)
	size := s.hdr + n
	if size > len(dst) {
		s.drop++
		s.off = payload
		return 0
	}
	p := s.buf[:s.size]
	ihl := int(p[0]&0x0f) * 4
	copy(dst, p[:s.hdr])
	copy(dst[s.hdr:], p[s.hdr+s.off:s.hdr+s.off+n])
	out := dst[:size]
	ip := header.IPv4(out)
	ip.SetTotalLength(uint16(size))
	ip.SetID(s.id)
	tcp := header.TCP(out[ihl:])
	tcp.SetSequenceNumber(header.TCP(p[ihl:]).SequenceNumber() + uint32(s.off))
	s.off += n
	s.id++
	if s.off < payload {
		// FIN and PSH belong to the last segment only (and the
		// receiver's GRO merges up to a PSH).
		tcp.SetFlags(uint8(tcp.Flags() &^ (header.TCPFlagFin | header.TCPFlagPsh)))
	}
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
	finishTCP4(out, ihl, s.hdr-ihl)
	return size
}

// tcp4Headers returns the IPv4 and TCP header lengths of p, which must hold
// both whole.
func tcp4Headers(p []byte) (ihl, thl int, ok bool) {
	if len(p) < header.IPv4MinimumSize || p[0]>>4 != 4 {
		return 0, 0, false
	}
	ihl = int(p[0]&0x0f) * 4
	if ihl < header.IPv4MinimumSize || len(p) < ihl+header.TCPMinimumSize || p[9] != uint8(header.TCPProtocolNumber) {
		return 0, 0, false
	}
	thl = int(p[ihl+12]>>4) * 4
	if thl < header.TCPMinimumSize || len(p) < ihl+thl {
		return 0, 0, false
	}
	return ihl, thl, true
}

// finishTCP4 computes the TCP checksum of the IPv4 packet p over the
// pseudo-header, the TCP header and the payload.
func finishTCP4(p []byte, ihl, thl int) {
	ip := header.IPv4(p)
	tcp := header.TCP(p[ihl:])
	tcp.SetChecksum(0)
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber,
		ip.SourceAddress(), ip.DestinationAddress(), uint16(len(p)-ihl))
	tcp.SetChecksum(^checksum.Checksum(p[ihl:], sum))
}
