package netstack

import (
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// ackHoldTime is how long the link keeps a pure ACK back in the hope that
// the connection's next segment (the reply) carries the same
// acknowledgement. gVisor has no delayed ACK (it acknowledges every batch of
// segments at once, tcp.handleSegmentsLocked), so each Erlang message in
// userspace mode costs the other direction one more WireGuard packet: a
// seal, a send and a wake-up of the other daemon, on CPUs the nodes need.
// Well under gVisor's tail-loss probe for one segment in flight (2 srtt +
// 200 ms) and its minimum retransmission timeout (tcpMinRTO).
const ackHoldTime = 200 * time.Microsecond

// flow4 names a TCP connection by its IPv4 addresses and ports as sent.
type flow4 [12]byte

// heldAck is a pure ACK kept back, and the acknowledgement it carries.
type heldAck struct {
	pkt *stack.PacketBuffer
	ack seqnum.Value
}

// ackKind sorts an outbound packet for holdAcks.
type ackKind int

const (
	notTCP   ackKind = iota
	otherTCP         // data, SYN, FIN, RST, or an ACK with SACK blocks
	pureACK          // no payload, flags ACK (or ACK|PSH), no SACK blocks: may wait
)

// classify reads pkt's IPv4 and TCP headers: its kind, its connection and,
// when it has the ACK flag (hasAck), its acknowledgement.
func classify(pkt *stack.PacketBuffer) (kind ackKind, f flow4, ack seqnum.Value, hasAck bool) {
	if pkt.TransportProtocolNumber != header.TCPProtocolNumber || pkt.NetworkProtocolNumber != header.IPv4ProtocolNumber {
		return notTCP, f, 0, false
	}
	ip := header.IPv4(pkt.NetworkHeader().Slice())
	tcp := header.TCP(pkt.TransportHeader().Slice())
	if len(ip) < header.IPv4MinimumSize || len(tcp) < header.TCPMinimumSize {
		return notTCP, f, 0, false
	}
	copy(f[0:8], ip[12:20])
	copy(f[8:12], tcp[0:4])
	flags := tcp.Flags()
	hasAck = flags&header.TCPFlagAck != 0
	ack = seqnum.Value(tcp.AckNumber())
	// Timestamps take 12 option bytes; anything longer carries SACK blocks
	// (loss signals, never held).
	if pkt.Data().Size() == 0 && flags&^header.TCPFlagPsh == header.TCPFlagAck && len(tcp) <= header.TCPMinimumSize+12 {
		return pureACK, f, ack, true
	}
	return otherTCP, f, ack, hasAck
}

// holdLocked decides what happens to the held ACKs when pkt is about to be
// queued, and reports whether pkt itself is held (the link then owns its
// new reference). A pure ACK is held, and an earlier held one of its
// connection queued first (ACKs are never merged: a sender counts them).
// Any other segment of a connection with a held ACK drops the held ACK if
// it acknowledges at least as much (the reply carries it), else queues it
// first.
//
// +checklocks:l.mu
func (l *link) holdLocked(pkt *stack.PacketBuffer) bool {
	kind, f, ack, hasAck := classify(pkt)
	if kind == notTCP {
		return false
	}
	old, ok := l.held[f]
	if ok {
		delete(l.held, f)
		if kind == otherTCP && hasAck && !ack.LessThan(old.ack) {
			old.pkt.DecRef()
			l.acksSaved++
		} else {
			l.enqueueLocked(old.pkt)
		}
	}
	if kind != pureACK {
		return false
	}
	if l.held == nil {
		l.held = make(map[flow4]heldAck)
	}
	l.held[f] = heldAck{pkt: pkt.IncRef(), ack: ack}
	if !l.holdArmed {
		l.holdArmed = true
		if l.holdTimer == nil {
			l.holdTimer = time.AfterFunc(ackHoldTime, l.releaseHeld)
		} else {
			l.holdTimer.Reset(ackHoldTime)
		}
	}
	return true
}

// releaseHeld queues every held ACK: their time is up.
func (l *link) releaseHeld() {
	l.mu.Lock()
	l.holdArmed = false
	n := len(l.held)
	for f, h := range l.held {
		delete(l.held, f)
		if l.closed {
			h.pkt.DecRef()
			continue
		}
		l.enqueueLocked(h.pkt)
	}
	l.mu.Unlock()
	if n > 0 {
		l.signal()
	}
}

// dropHeldLocked releases the held ACKs' references (on Close).
//
// +checklocks:l.mu
func (l *link) dropHeldLocked() {
	for f, h := range l.held {
		delete(l.held, f)
		h.pkt.DecRef()
	}
	if l.holdTimer != nil {
		l.holdTimer.Stop()
	}
}
