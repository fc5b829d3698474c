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

// maxAckFlows bounds the connections the link remembers (ackFlow); past
// it, those with no held ACK are forgotten.
const maxAckFlows = 4096

// ackFlow is what the link remembers of one connection: whether its last
// segment out carried data (it answers: the next ACK may ride on the next
// answer), and the pure ACK kept back, if any, with its acknowledgement.
type ackFlow struct {
	answered bool
	pkt      *stack.PacketBuffer
	ack      seqnum.Value
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
// new reference).
//
// A pure ACK is held only on a connection whose last segment out carried
// data: a request/response connection, whose next answer will likely carry
// the acknowledgement. On a connection that only receives (bulk), ACKs go
// at once: holding them would slow the sender's ACK clock (measured: bulk
// halved). A held ACK is dropped when a later segment of its connection
// acknowledges at least as much (the reply carries it); any other segment
// queues it first; ACKs are never merged (a sender counts them). An ACK
// that had to wait for the timer ends the connection's answered state.
//
// +checklocks:l.mu
func (l *link) holdLocked(pkt *stack.PacketBuffer) bool {
	kind, f, ack, hasAck := classify(pkt)
	if kind == notTCP {
		return false
	}
	if l.flows == nil {
		l.flows = make(map[flow4]*ackFlow)
	}
	st := l.flows[f]
	if st == nil {
		if len(l.flows) >= maxAckFlows {
			l.forgetIdleFlowsLocked()
		}
		st = &ackFlow{}
		l.flows[f] = st
	}
	if st.pkt != nil {
		if kind == otherTCP && hasAck && !ack.LessThan(st.ack) {
			st.pkt.DecRef()
			l.acksSaved++
		} else {
			l.enqueueLocked(st.pkt)
		}
		st.pkt = nil
		l.held--
		if kind == pureACK {
			st.answered = false // ACK after ACK: the connection receives
		}
		if l.held == 0 && l.holdArmed {
			// Nothing left to release: no wake-up for the timer.
			l.holdTimer.Stop()
			l.holdArmed = false
		}
	}
	tcp := header.TCP(pkt.TransportHeader().Slice())
	if tcp.Flags()&(header.TCPFlagFin|header.TCPFlagRst) != 0 {
		delete(l.flows, f)
		return false
	}
	if kind != pureACK {
		st.answered = pkt.Data().Size() > 0
		return false
	}
	if !st.answered {
		return false
	}
	st.pkt, st.ack = pkt.IncRef(), ack
	l.held++
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

// forgetIdleFlowsLocked drops the connections with no held ACK (those that
// ended without a FIN or RST sent here stay until then).
//
// +checklocks:l.mu
func (l *link) forgetIdleFlowsLocked() {
	for f, st := range l.flows {
		if st.pkt == nil {
			delete(l.flows, f)
		}
	}
}

// releaseHeld queues every held ACK: their time is up, and their
// connections stop being treated as answering.
func (l *link) releaseHeld() {
	l.mu.Lock()
	l.holdArmed = false
	n := l.held
	for _, st := range l.flows {
		if st.pkt == nil {
			continue
		}
		if l.closed {
			st.pkt.DecRef()
		} else {
			l.enqueueLocked(st.pkt)
		}
		st.pkt = nil
		st.answered = false
	}
	l.held = 0
	l.mu.Unlock()
	if n > 0 {
		l.signal()
	}
}

// dropHeldLocked releases the held ACKs' references (on Close).
//
// +checklocks:l.mu
func (l *link) dropHeldLocked() {
	for f, st := range l.flows {
		if st.pkt != nil {
			st.pkt.DecRef()
		}
		delete(l.flows, f)
	}
	l.held = 0
	if l.holdTimer != nil {
		l.holdTimer.Stop()
	}
}
