package netstack

import (
	"io"
	"net"
	"net/netip"
	"sync"

	"github.com/nodewire/nodewire/peers"
)

// trackedConn is one live forwarded connection: enough to judge it again
// under a new snapshot and to close it.
type trackedConn struct {
	id       uint64
	peer     string     // the remote peer, by name
	peerAddr netip.Addr // its identity when the connection was opened
	peerKey  peers.Key
	selfAddr netip.Addr
	port     uint16 // as given to Decide (the EPMD port as peers.EPMDPort)
	dir      peers.Direction
	erlang   bool
	node     string // the Erlang node a dist port belongs to, when known
	epmd     bool   // an EPMD exchange (policy port is peers.EPMDPort)

	stats *peerCounters
	snap  *peers.Snapshot // the one it was allowed under

	mu      sync.Mutex
	closers []io.Closer
	closed  bool
}

// close closes every socket of the connection in order (pending data is
// still sent); the copy goroutines then end on their own.
func (c *trackedConn) close() {
	for _, x := range c.take() {
		x.Close()
	}
}

// abort resets every socket of the connection, so both ends learn at once
// that it is over (used when the policy or a removal ends it).
func (c *trackedConn) abort() {
	for _, x := range c.take() {
		switch x := x.(type) {
		case *net.TCPConn:
			x.SetLinger(0)
			x.Close()
		case *overlayConn:
			x.abort()
		default:
			x.Close()
		}
	}
}

func (c *trackedConn) take() []io.Closer {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.closers
	c.closers, c.closed = nil, true
	return cl
}

// attach adds a socket to close with the connection; if the connection was
// closed meanwhile it closes x at once and returns false.
func (c *trackedConn) attach(x io.Closer) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		x.Close()
		return false
	}
	c.closers = append(c.closers, x)
	c.mu.Unlock()
	return true
}

// registry holds every live connection by peer name, so Apply can judge and
// close them and Close can end them all.
type registry struct {
	mu     sync.Mutex
	next   uint64
	byPeer map[string]map[uint64]*trackedConn
	closed bool
}

func newRegistry() *registry {
	return &registry{byPeer: make(map[string]map[uint64]*trackedConn)}
}

// add registers c and counts it open; false after closeAll (c is closed).
func (r *registry) add(c *trackedConn) bool {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.close()
		return false
	}
	r.next++
	c.id = r.next
	m := r.byPeer[c.peer]
	if m == nil {
		m = make(map[uint64]*trackedConn)
		r.byPeer[c.peer] = m
	}
	m[c.id] = c
	r.mu.Unlock()
	c.stats.open.Add(1)
	c.stats.total.Add(1)
	return true
}

// track registers tc. A snapshot applied between the decision and now has
// not seen tc, so tc is judged again under it. False after Close.
func (s *Stack) track(tc *trackedConn) bool {
	if !s.conns.add(tc) {
		return false
	}
	if snap := s.snap.Load(); snap != tc.snap {
		if why := judgeOne(snap, snap.Self, snap.File.Peer(tc.peer), tc); why != "" {
			s.log.Info("netstack: closed connection: "+why, "peer", tc.peer, "dir", tc.dir.String(), "port", tc.port)
			tc.abort()
		}
	}
	return true
}

// remove unregisters c once its copying is over.
func (r *registry) remove(c *trackedConn) {
	r.mu.Lock()
	m := r.byPeer[c.peer]
	if _, ok := m[c.id]; ok {
		delete(m, c.id)
		if len(m) == 0 {
			delete(r.byPeer, c.peer)
		}
		c.stats.open.Add(-1)
	}
	r.mu.Unlock()
}

// closeAll closes every connection and refuses new ones.
func (r *registry) closeAll() {
	r.mu.Lock()
	r.closed = true
	var all []*trackedConn
	for _, m := range r.byPeer {
		for _, c := range m {
			all = append(all, c)
		}
	}
	r.mu.Unlock()
	for _, c := range all {
		c.abort()
	}
}

// verdict is a connection the new snapshot no longer allows, and why.
type verdict struct {
	tc  *trackedConn
	why string
}

// judge runs the policy of snap over every live connection and returns
// those to close. Connections of unchanged, still-allowed peers are left
// alone.
func (r *registry) judge(snap *peers.Snapshot) []verdict {
	self := snap.Self
	var out []verdict
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, m := range r.byPeer {
		p := snap.File.Peer(name)
		for _, c := range m {
			if why := judgeOne(snap, self, p, c); why != "" {
				out = append(out, verdict{c, why})
			}
		}
	}
	return out
}

// judgeOne returns why c must close under snap, or "" to keep it.
func judgeOne(snap *peers.Snapshot, self, p *peers.Peer, c *trackedConn) string {
	switch {
	case p == nil:
		return "peer removed"
	case p.Address != c.peerAddr:
		// A new key alone keeps connections: it is a rotation of the same
		// peer, and WireGuard accepts packets for the address only from the
		// new key from now on, so nothing else can use them.
		return "peer changed address"
	case self.Address != c.selfAddr:
		return "this host's address changed"
	case p.Name == self.Name:
		return "peer is now this host"
	}
	q := peers.Conn{From: self, To: p, Port: c.port, Erlang: c.erlang, Node: c.node, Dir: peers.Outbound}
	if c.dir == peers.Inbound {
		q.From, q.To, q.Dir = p, self, peers.Inbound
	}
	switch v := snap.File.Judge(q); {
	case v.NotOffered:
		return "port no longer exposed"
	case !v.Allow():
		return "policy now denies: " + v.String()
	}
	return ""
}
