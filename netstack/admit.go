package netstack

import (
	"encoding/binary"
	"net/netip"

	"github.com/nodewire/nodewire/peers"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// admit decides, for each packet WireGuard decrypted, whether the stack
// may see it at all. gVisor's IP layer answers on its own what no
// listener decides: echo requests with echo replies, other protocols with
// "protocol unreachable", stray fragments with "time exceeded", bad
// options with "parameter problem". Those answers must follow the policy
// like the forwarder's resets do, so the filter sits before delivery:
//
//   - TCP without IP options or fragmentation passes untouched: the
//     forwarder judges each SYN, as before.
//   - An echo request passes if its source may ping this host
//     (peers.File.DecidePing: it reaches this host on some port); else it
//     is dropped, counted and logged like a refused connection.
//   - Echo replies and ICMP errors pass from any peer: they answer what
//     this host sent (a ping, a connection to a host the peer may not
//     reach back), and the stack never answers them.
//   - Anything else (UDP, other ICMP, options, fragments) passes only
//     from a peer that reaches this host, which then gets the ordinary
//     answers; from any other source it is dropped without a trace, so
//     probing teaches it nothing.
//
// It runs on WireGuard's receive goroutines, one packet at a time; the
// common case (plain TCP) reads three bytes of header.
func (s *Stack) admit(pkt []byte) bool {
	if len(pkt) < header.IPv4MinimumSize || pkt[0]>>4 != 4 {
		return true // not IPv4: the stack has no IPv6 and drops it, no answer
	}
	ihl := int(pkt[0]&0x0f) * 4
	plain := ihl == header.IPv4MinimumSize && binary.BigEndian.Uint16(pkt[6:8])&0x3fff == 0 // no MF, offset 0
	proto := pkt[9]
	if plain && proto == uint8(header.TCPProtocolNumber) {
		return true
	}
	snap := s.snap.Load()
	self := snap.Self
	srcAddr := netip.AddrFrom4([4]byte(pkt[12:16]))
	src := snap.File.PeerByAddr(srcAddr)
	if src != nil && src.Name == self.Name {
		src = nil // this host's own address from outside: forged
	}
	if plain && proto == uint8(header.ICMPv4ProtocolNumber) && len(pkt) >= ihl+header.ICMPv4MinimumSize {
		switch header.ICMPv4Type(pkt[ihl]) {
		case header.ICMPv4Echo:
			return s.admitEcho(snap, src, srcAddr)
		case header.ICMPv4EchoReply, header.ICMPv4DstUnreachable, header.ICMPv4TimeExceeded, header.ICMPv4ParamProblem:
			return src != nil
		}
	}
	return src != nil && snap.File.Reaches(src, self)
}

// admitEcho judges an echo request from src (nil: not a peer).
func (s *Stack) admitEcho(snap *peers.Snapshot, src *peers.Peer, srcAddr netip.Addr) bool {
	self := snap.Self
	if src == nil {
		s.refusePing(srcAddr.String(), srcAddr.String(), self.Name, reasonUnknownSource, "unknown source address")
		return false
	}
	d := snap.File.DecidePing(src, self)
	if d.Allow {
		return true
	}
	s.stats.peer(src.Name).deniedIn.Add(1)
	s.countDecision(peers.Inbound, src.Name, d)
	s.refusePing(src.Name, src.Name, self.Name, "", d.String())
	return false
}
