package packetfilter

import (
	"net/netip"

	"github.com/nodewire/nodewire/peers"
)

// flowKey names a flow the same way from both ends: its two endpoints in a
// fixed order (the lower address, then port, is a), so a packet and its
// reply find one entry with one lookup.
type flowKey struct {
	a, b   [4]byte
	ap, bp uint16
	proto  uint8
}

// keyOf is the key of a packet from src:sport to dst:dport; srcIsA says
// which side of the key the sender is.
func keyOf(proto uint8, src netip.Addr, sport uint16, dst netip.Addr, dport uint16) (flowKey, bool) {
	s, d := src.As4(), dst.As4()
	srcIsA := s != d && less4(s, d) || s == d && sport <= dport
	if srcIsA {
		return flowKey{a: s, b: d, ap: sport, bp: dport, proto: proto}, true
	}
	return flowKey{a: d, b: s, ap: dport, bp: sport, proto: proto}, false
}

func less4(x, y [4]byte) bool {
	for i := range x {
		if x[i] != y[i] {
			return x[i] < y[i]
		}
	}
	return false
}

// Flow states.
const (
	stSyn         uint8 = iota // TCP: SYN seen, no answer yet
	stEstablished              // TCP answered; UDP and ICMP flows
	stClosing                  // TCP: both sides sent FIN
	stReset                    // TCP: a reset crossed
	stRevoked                  // a reload no longer allows it
	stRefused                  // TCP: its first segment was refused; both ends were reset
)

// What an inbound TCP flow's first segment from the peer must show before
// anything else of it reaches the kernel.
const (
	inspectNone     uint8 = iota
	inspectEPMD           // one whole EPMD request; PORT_PLEASE2 and NAMES judged by the nodes lists
	inspectSendName       // one whole send_name naming a node of the source peer
)

// flow is one tracked connection: a value in the table, so updating it
// costs no allocation.
type flow struct {
	expires    int64 // Filter clock
	remote     netip.Addr
	localPort  uint16
	remotePort uint16
	port       uint16 // the port the policy was asked about (0 for ping)
	state      uint8
	initIsA    bool // the side that opened the flow is the key's a
	outbound   bool // this host opened it
	erlang     bool // the port counted as an Erlang port when it opened
	finInit    bool
	finResp    bool
	haveSeq    bool   // localNext and localAck are known
	localNext  uint32 // the local side's next sequence number
	localAck   uint32 // the last acknowledgement the local side sent
	remoteNext uint32 // inbound: the sequence number the peer's first segment must have
	inspect    uint8  // inspectNone once the first segment passed
	node       string // inbound to a distribution port: the node epmd registered it to, if known
}

// follow moves a tracked flow along with packet p. done is false when p
// starts a new connection on the ports of a closed one, which must be
// judged anew.
func (f *Filter) follow(fl *flow, p *packet, srcIsA bool, dir peers.Direction, now int64) (v verdict, done bool) {
	fromInit := srcIsA == fl.initIsA
	if fl.state == stRefused {
		// Both ends were reset: only the kernel's own resets still pass.
		if dir == peers.Outbound && p.proto == protoTCP && p.flags&tcpRST != 0 {
			return pass, true
		}
		if p.proto == protoTCP && p.flags&(tcpSYN|tcpACK) == tcpSYN && fromInit {
			return drop, false // a new connection on the same ports: judged anew
		}
		return drop, true
	}
	if fl.state == stRevoked {
		// Let resets through, and the peer's packets to the kernel (which
		// has no socket for them any more and answers with a reset).
		if p.proto == protoTCP && (dir == peers.Inbound || p.flags&tcpRST != 0) {
			return pass, true
		}
		return drop, true
	}
	switch p.proto {
	case protoTCP:
		syn := p.flags&(tcpSYN|tcpACK) == tcpSYN
		if syn && fromInit && (fl.state == stClosing || fl.state == stReset) {
			return drop, false
		}
		if syn && !fromInit {
			return drop, true // a SYN from the side that did not open the flow
		}
		switch {
		case p.flags&tcpRST != 0:
			fl.state, fl.expires = stReset, now+int64(resetTTL)
		case fl.state == stReset:
			// keep the short expiry
		default:
			if !fromInit && fl.state == stSyn {
				fl.state = stEstablished
			}
			if p.flags&tcpFIN != 0 {
				if fromInit {
					fl.finInit = true
				} else {
					fl.finResp = true
				}
			}
			switch {
			case fl.finInit && fl.finResp:
				fl.state, fl.expires = stClosing, now+int64(closingTTL)
			case fl.state == stSyn:
				fl.expires = now + int64(synTTL)
			default:
				fl.expires = now + int64(estTTL)
			}
		}
		if dir == peers.Outbound {
			fl.localNext, fl.haveSeq = p.seq+segLen(p), true
			if p.flags&tcpACK != 0 {
				fl.localAck = p.ack
			}
		}
	case protoUDP:
		fl.expires = now + int64(udpTTL)
	case protoICMP:
		if fromInit && p.icmpType != icmpEchoRequest || !fromInit && p.icmpType != icmpEchoReply {
			return drop, true
		}
		fl.expires = now + int64(icmpTTL)
	}
	return pass, true
}
