package packetfilter

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers the filter understands.
const (
	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17
)

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// ICMP types.
const (
	icmpEchoReply   = 0
	icmpUnreachable = 3
	icmpEchoRequest = 8
	icmpTimeExceed  = 11
	icmpParamProb   = 12
)

// packet is what the filter reads from one IPv4 packet: parsed in place, no
// copies, so a packet costs no allocation.
type packet struct {
	proto      uint8
	src, dst   netip.Addr
	sport      uint16 // TCP/UDP ports; for ICMP echo both are the identifier
	dport      uint16
	flags      uint8  // TCP flags
	seq, ack   uint32 // TCP
	payload    []byte // TCP payload
	icmpType   uint8
	icmpInner  bool       // an ICMP error: isrc, idst and the ports describe the packet it quotes
	innerProto uint8      // the quoted packet's protocol
	isrc, idst netip.Addr // the quoted packet's addresses
	frag       bool       // a fragment (MF set or offset > 0)
	ipLen      int        // total length
}

// parse reads an IPv4 packet. ok is false for anything the filter cannot
// judge (IPv6, truncated or malformed headers): such packets are dropped.
func parse(b []byte, p *packet) (ok bool) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl || total > len(b) {
		return false
	}
	b = b[:total]
	*p = packet{
		proto: b[9],
		src:   netip.AddrFrom4([4]byte(b[12:16])),
		dst:   netip.AddrFrom4([4]byte(b[16:20])),
		frag:  binary.BigEndian.Uint16(b[6:8])&0x3fff != 0,
		ipLen: total,
	}
	if p.frag {
		return true // ports unknown; the filter drops fragments
	}
	l4 := b[ihl:]
	switch p.proto {
	case protoTCP:
		if len(l4) < 20 {
			return false
		}
		off := int(l4[12]>>4) * 4
		if off < 20 || off > len(l4) {
			return false
		}
		p.sport = binary.BigEndian.Uint16(l4[0:2])
		p.dport = binary.BigEndian.Uint16(l4[2:4])
		p.seq = binary.BigEndian.Uint32(l4[4:8])
		p.ack = binary.BigEndian.Uint32(l4[8:12])
		p.flags = l4[13]
		p.payload = l4[off:]
	case protoUDP:
		if len(l4) < 8 {
			return false
		}
		p.sport = binary.BigEndian.Uint16(l4[0:2])
		p.dport = binary.BigEndian.Uint16(l4[2:4])
	case protoICMP:
		if len(l4) < 8 {
			return false
		}
		p.icmpType = l4[0]
		switch p.icmpType {
		case icmpEchoRequest, icmpEchoReply:
			id := binary.BigEndian.Uint16(l4[4:6])
			p.sport, p.dport = id, id
		case icmpUnreachable, icmpTimeExceed, icmpParamProb:
			return parseQuoted(l4[8:], p)
		}
	}
	return true
}

// parseQuoted reads the packet an ICMP error quotes (its IP header and at
// least 8 bytes of its transport header) into p's inner fields and ports, so the error can be matched to the flow
// it is about.
func parseQuoted(q []byte, p *packet) bool {
	if len(q) < 20 || q[0]>>4 != 4 {
		return false
	}
	ihl := int(q[0]&0x0f) * 4
	if ihl < 20 || len(q) < ihl+8 {
		return false
	}
	p.icmpInner = true
	p.innerProto = q[9]
	p.isrc = netip.AddrFrom4([4]byte(q[12:16]))
	p.idst = netip.AddrFrom4([4]byte(q[16:20]))
	l4 := q[ihl:]
	switch p.innerProto {
	case protoTCP, protoUDP:
		p.sport = binary.BigEndian.Uint16(l4[0:2])
		p.dport = binary.BigEndian.Uint16(l4[2:4])
	case protoICMP:
		id := binary.BigEndian.Uint16(l4[4:6])
		p.sport, p.dport = id, id
	default:
		return false
	}
	return true
}

// tcpReset builds, into b (at least 40 bytes), the RST|ACK a host would send
// in answer to the TCP packet p: from p's destination to its source, so a
// local socket whose connection the filter refuses fails at once
// (ECONNREFUSED) instead of retrying its SYN until it times out. ack is
// what the RST acknowledges. It returns the packet's length.
func tcpReset(b []byte, p *packet, seq, ack uint32) int {
	const n = 40
	b = b[:n]
	clear(b)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], n)
	b[6] = 0x40 // DF
	b[8] = 64   // TTL
	b[9] = protoTCP
	src, dst := p.dst.As4(), p.src.As4()
	copy(b[12:16], src[:])
	copy(b[16:20], dst[:])
	binary.BigEndian.PutUint16(b[10:12], ^checksum(b[:20], 0))
	t := b[20:]
	binary.BigEndian.PutUint16(t[0:2], p.dport)
	binary.BigEndian.PutUint16(t[2:4], p.sport)
	binary.BigEndian.PutUint32(t[4:8], seq)
	binary.BigEndian.PutUint32(t[8:12], ack)
	t[12] = 5 << 4
	t[13] = tcpRST | tcpACK
	// Pseudo-header: addresses, protocol, TCP length.
	sum := checksum(b[12:20], uint32(protoTCP)+uint32(len(t)))
	binary.BigEndian.PutUint16(t[16:18], ^checksum(t, uint32(sum)))
	return n
}

// segLen is how much sequence space p takes: its payload, plus one each
// for SYN and FIN.
func segLen(p *packet) uint32 {
	n := uint32(len(p.payload))
	if p.flags&tcpSYN != 0 {
		n++
	}
	if p.flags&tcpFIN != 0 {
		n++
	}
	return n
}

// checksum is the Internet checksum (RFC 1071) of b, folded, starting from
// initial; callers complement it.
func checksum(b []byte, initial uint32) uint16 {
	sum := initial
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
