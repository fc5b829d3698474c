package netstack

// Dialling ahead, userspace mode, outbound: the cold connect's overlay TCP
// handshake taken off its critical path.
//
// A local node that asked a peer's face for a node's port dials that port
// next, at once. So the moment the lookup is answered (from the cache or
// by the peer's epmd), this host dials the port through the overlay
// itself, and the face's handler takes that connection when the node's
// dial arrives instead of dialling then: the overlay handshake, and the
// peer's dial to its local node that comes before its half of it
// (forward_in.go), run while the node opens its socket and writes its
// first message, not after. Nothing else changes: the face's handler
// judges the node's connection as before (the dial ahead is made only
// when the same question is allowed now), a cached answer's check still
// decides where the connection goes (epmdcache.go), and the peer judges
// the connection when it arrives, as any other. One dial ahead per face
// (peer, port) at a time; one nobody takes within predialKeep is closed
// before a byte was sent, which the peer closes in turn without a word.

import (
	"net/netip"
	"time"

	"github.com/nodewire/nodewire/peers"
)

// predialKeep is how long a dial ahead waits for the node's connection:
// a node dials within milliseconds of its lookup.
const predialKeep = 2 * time.Second

// predial is one overlay connection dialled ahead to a face's port.
type predial struct {
	addr  netip.AddrPort
	done  chan struct{} // closed when the dial ended: conn is set, or nil
	taken chan struct{} // closed by take: conn belongs to the taker
	conn  *overlayConn
}

// predialTo dials p's port ahead for the local node that was just told
// it, when self may connect there as node's distribution port under snap.
func (s *Stack) predialTo(snap *peers.Snapshot, p *peers.Peer, port uint16, node string) {
	q := peers.Conn{From: snap.Self, To: p, Port: s.policyPort(port), Dir: peers.Outbound, Erlang: true, Node: node}
	if !snap.File.Judge(q).Allow() {
		return
	}
	k := faceKey{p.Name, port}
	pd := &predial{addr: netip.AddrPortFrom(p.Address, port), done: make(chan struct{}), taken: make(chan struct{})}
	c := s.epmd
	c.mu.Lock()
	if c.predials[k] != nil {
		c.mu.Unlock()
		return
	}
	c.predials[k] = pd
	c.mu.Unlock()
	if !s.group.spawn(func() { s.runPredial(k, pd) }) {
		c.mu.Lock()
		delete(c.predials, k)
		c.mu.Unlock()
	}
}

// runPredial dials pd and keeps it until it is taken, predialKeep passes
// or the stack closes.
func (s *Stack) runPredial(k faceKey, pd *predial) {
	conn, err := s.dialOverlay(s.ctx, pd.addr)
	if err != nil {
		s.log.Debug("netstack: dial ahead", "peer", k.peer, "port", k.port, "err", err)
	}
	pd.conn = conn
	close(pd.done)
	t := time.NewTimer(predialKeep)
	defer t.Stop()
	select {
	case <-pd.taken:
		return
	case <-t.C:
	case <-s.ctx.Done():
	}
	c := s.epmd
	c.mu.Lock()
	mine := c.predials[k] == pd
	if mine {
		delete(c.predials, k)
	}
	c.mu.Unlock()
	if mine && conn != nil {
		conn.Close() // nothing sent: the peer closes without a word
	}
}

// takePredial is the connection dialled ahead to p's port, waiting for
// its dial to end; nil if there is none (or it failed, or p's address
// changed since).
func (s *Stack) takePredial(p *peers.Peer, port uint16) *overlayConn {
	k := faceKey{p.Name, port}
	c := s.epmd
	c.mu.Lock()
	pd := c.predials[k]
	if pd != nil {
		delete(c.predials, k)
		close(pd.taken)
	}
	c.mu.Unlock()
	if pd == nil {
		return nil
	}
	<-pd.done // dialOverlay ends by its timeout or the stack's close
	if pd.conn != nil && pd.addr != netip.AddrPortFrom(p.Address, port) {
		pd.conn.Close()
		return nil
	}
	return pd.conn
}
