package netstack

// Cached EPMD answers, userspace mode, outbound: the cold connect's first
// overlay crossing taken off its critical path.
//
// A PORT_PLEASE2 from a local node to a peer's face is answered at once
// with the last ok PORT2_RESP that peer's epmd gave for that name. The
// cached port is never trusted: it only names the face the node will dial,
// and nothing from the far end reaches the node before either the far end
// has named itself the node asked for, or the real lookup (the "check")
// has answered.
//   - The node at the cached port answers the handshake's send_name with
//     an ok status and a challenge carrying its name: if that is the name
//     asked for (at that peer: names are unique per epmd), it is the node
//     the check would find, and the connection goes on at once, with no
//     check at all. That is every cold connect to a node that has not
//     restarted: one overlay connection, no second lookup competing with
//     it for the two daemons' time.
//   - Anything else (another name or status, TLS distribution, which has no
//     clear-text name, a refused or failed dial): the check runs then (for
//     TLS from the node's first bytes on), and decides.
//   - The check finds the node at the same port: the connection goes ahead.
//   - At another port (the node restarted): the connection is carried to
//     that port instead, so it reaches the node the client asked for; the
//     port the client was told is just the face it came in on.
//   - Not at all, or no answer: the client's connection is reset, as a
//     connection to a node that went away would be (net_adm:ping says pang
//     either way, as after a "not found" reply).
//
// So a restart of the remote node can make the first connection after it
// take the lookup's time again, never reach a wrong or dead port. Checks
// are kept per face (peer, port): one that confirmed its port is dropped
// at once (later dials need none, exactly as after an uncached lookup); one
// that moved or lost the node stays for checkKeep to redirect or reset the
// dials the stale answer leads to. The cache learns from every ok answer
// and forgets a name its epmd no longer lists.

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/peers"
)

const (
	// maxCachedNames bounds the cache (names asked of all peers).
	maxCachedNames = 4096
	// checkKeep is how long a check that moved or lost a node keeps
	// redirecting dials to the port it was about.
	checkKeep = 30 * time.Second
)

// epmdCache is the stack's cache of peers' PORT2_RESPs and its checks.
type epmdCache struct {
	mu      sync.Mutex
	replies map[epmdName][]byte
	checks  map[faceKey]*epmdCheck
}

// epmdName is a node name at a peer (by name and overlay address, so a
// peer that changes address in the file starts afresh).
type epmdName struct {
	peer string
	addr netip.Addr
	name string
}

// epmdCheck is one confirming lookup, started when a connection first
// needs it (begin): port is set before done closes.
type epmdCheck struct {
	done  chan struct{}
	port  uint16 // where the peer's epmd has the node now; 0: nowhere (or no answer)
	ended time.Time
	node  string // the node the cached answer was for (PORT_PLEASE2's name)
	once  sync.Once
	run   func(*epmdCheck) // starts the lookup; ends with finish
}

// begin starts chk's lookup, once.
func (chk *epmdCheck) begin() { chk.once.Do(func() { chk.run(chk) }) }

func newEPMDCache() *epmdCache {
	return &epmdCache{replies: map[epmdName][]byte{}, checks: map[faceKey]*epmdCheck{}}
}

// cached is the last ok reply for name at p, or nil.
func (c *epmdCache) cached(p *peers.Peer, name string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replies[epmdName{p.Name, p.Address, name}]
}

// learn records a reply from p's epmd for name: an ok one is kept, any
// other forgets the name.
func (c *epmdCache) learn(p *peers.Peer, name string, reply []byte) {
	k := epmdName{p.Name, p.Address, name}
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := erldist.ParsePort2Resp(reply)
	if err != nil || !r.OK() {
		delete(c.replies, k)
		return
	}
	// A finished check about this port (one that moved or lost a node) is
	// older news than this answer.
	if chk := c.checks[faceKey{p.Name, r.Port}]; chk != nil {
		select {
		case <-chk.done:
			delete(c.checks, faceKey{p.Name, r.Port})
		default:
		}
	}
	if _, ok := c.replies[k]; ok || len(c.replies) < maxCachedNames {
		c.replies[k] = append([]byte(nil), reply...)
	}
}

// forget drops name at p.
func (c *epmdCache) forget(p *peers.Peer, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.replies, epmdName{p.Name, p.Address, name})
}

// startCheck registers a check of the cached answer that node is at p's
// face at port (replacing any); run starts it when begun.
func (c *epmdCache) startCheck(p *peers.Peer, port uint16, node string, run func(*epmdCheck)) *epmdCheck {
	chk := &epmdCheck{done: make(chan struct{}), node: node, run: run}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks[faceKey{p.Name, port}] = chk
	return chk
}

// confirmed drops chk, registered for p's face at port, without running
// it: a connection found the node it stood for there.
func (c *epmdCache) confirmed(p *peers.Peer, port uint16, chk *epmdCheck) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := (faceKey{p.Name, port}); c.checks[k] == chk {
		delete(c.checks, k)
	}
}

// finish ends chk, registered for p's face at port, with the port the node
// has now (0: none).
func (c *epmdCache) finish(p *peers.Peer, port uint16, chk *epmdCheck, now uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	chk.port, chk.ended = now, time.Now()
	close(chk.done)
	k := faceKey{p.Name, port}
	if now == port && c.checks[k] == chk {
		delete(c.checks, k)
	}
}

// pending is the check a dial to p's face at port must wait for, or nil.
func (c *epmdCache) pending(peer string, port uint16) *epmdCheck {
	k := faceKey{peer, port}
	c.mu.Lock()
	defer c.mu.Unlock()
	chk := c.checks[k]
	if chk == nil {
		return nil
	}
	select {
	case <-chk.done:
		if time.Since(chk.ended) > checkKeep {
			delete(c.checks, k)
			return nil
		}
	default:
	}
	return chk
}

// answerFromCache answers a PORT_PLEASE2 for name at p (frame is the
// request) from the cache, registering its check; false if it cannot
// (nothing cached, no face for the port): the caller looks up as usual.
func (s *Stack) answerFromCache(client interface{ Write([]byte) (int, error) }, p *peers.Peer, name string, frame []byte) bool {
	reply := s.epmd.cached(p, name)
	if reply == nil {
		return false
	}
	r, err := erldist.ParsePort2Resp(reply)
	if err != nil || !r.OK() || s.faces.ensureDist(p, r.Port, name) != nil {
		return false
	}
	req := append([]byte(nil), frame...)
	port := r.Port
	s.epmd.startCheck(p, port, name, func(chk *epmdCheck) {
		if !s.group.spawn(func() { s.checkEPMD(p, name, req, port, chk) }) {
			s.epmd.finish(p, port, chk, 0) // closing
		}
	})
	client.Write(reply)
	return true
}

// checkEPMD is a cached answer's check: the lookup it stood in for.
func (s *Stack) checkEPMD(p *peers.Peer, name string, frame []byte, port uint16, chk *epmdCheck) {
	now := uint16(0)
	defer func() { s.epmd.finish(p, port, chk, now) }()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	reply, err := s.lookupPeer(p, frame, *bp)
	if err != nil {
		s.log.Debug("netstack: EPMD check", "peer", p.Name, "node", name, "err", err)
		s.epmd.forget(p, name)
		return
	}
	s.epmd.learn(p, name, reply)
	r, err := erldist.ParsePort2Resp(reply)
	if err != nil || !r.OK() {
		return
	}
	if r.Port != port {
		if err := s.faces.ensureDist(p, r.Port, name); err != nil {
			s.epmd.forget(p, name)
		}
		s.log.Debug("netstack: EPMD check: node moved", "peer", p.Name, "node", name, "cached", port, "now", r.Port)
	}
	now = r.Port
}

// lookupPeer sends one PORT_PLEASE2 frame to p's epmd through the overlay
// and returns the whole reply, read into buf. It closes first (see the top
// of relay.go).
func (s *Stack) lookupPeer(p *peers.Peer, frame, buf []byte) ([]byte, error) {
	remote, err := s.dialOverlay(s.ctx, netip.AddrPortFrom(p.Address, s.epmdPort))
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(s.ctx, func() { remote.Close() })
	defer stop()
	if _, err := remote.Write(frame); err != nil {
		remote.Close()
		return nil, err
	}
	remote.SetReadDeadline(deadlineIn(epmdReplyTimeout))
	reply, err := readPort2Resp(remote, buf)
	remote.Close()
	return reply, err
}

// errNodeGone is a dial refused because the check of a cached EPMD answer
// found the node gone.
var errNodeGone = errors.New("the node the cached EPMD answer named is no longer registered")

// maxKept bounds what a client may send before its check ends: the
// handshake's first message is a few hundred bytes, and the client waits
// for the answer to it.
const maxKept = 16 << 10

// dialDist dials p's port for a local connection to its face. When the port
// came from a cached answer whose check is still running, the connection
// it returns is a checkedConn.
func (s *Stack) dialDist(p *peers.Peer, port uint16) (HalfCloser, error) {
	chk := s.epmd.pending(p.Name, port)
	if chk == nil {
		return s.dialOverlay(s.ctx, netip.AddrPortFrom(p.Address, port))
	}
	c := &checkedConn{s: s, p: p, port: port, chk: chk, closing: make(chan struct{})}
	select {
	case <-chk.done:
		return c.settle()
	default:
	}
	// Dial the cached port while the check runs. A refusal (nothing
	// listens there any more) is no answer yet: the check says where to go.
	if conn, err := s.dialOverlay(s.ctx, netip.AddrPortFrom(p.Address, port)); err == nil {
		c.conn = conn
	}
	return c, nil
}

// checkedConn is a connection dialled on a cached EPMD answer before the
// answer's check ended (see the top of this file). What the client sends
// goes out at once and is kept; nothing from the far end reaches the client
// before the check ends, or before the far end names the node the client
// asked for: a node answers send_name with its status and a challenge that
// carries its name, and the one registered under that name at p is the
// node the check would find (names are unique per epmd), so the connection
// is settled there and then (readEarly). If the check confirms the port,
// the connection simply goes on. If the node moved, the kept bytes are sent again on a
// connection to its new port, which replaces this one, so the client's
// handshake reaches the node it asked for and never completes with another
// (whatever listened on the old port saw only a handshake that was cut
// off). If the node is gone, the connection fails.
type checkedConn struct {
	s       *Stack
	p       *peers.Peer
	port    uint16
	chk     *epmdCheck
	closing chan struct{} // closed by Close

	mu      sync.Mutex
	conn    *overlayConn // nil while the dial to the cached port failed
	kept    []byte       // what the client sent before settling
	settled bool
	err     error
	closed  bool
	// final is set once settled: conn and err are then read without mu,
	// so a settled connection costs one atomic load per Read or Write.
	final atomic.Bool

	// Read's own: what earlyFrom (the connection as it stood) sent before
	// the connection settled, delivered first if it is kept.
	early     []byte
	earlyFrom *overlayConn
}

// maxEarly bounds what Read takes from the far end before settling: a
// status and a challenge are a few hundred bytes.
const maxEarly = 4 << 10

// earlyWait is how long Read waits for the far end to name itself before
// it runs the check: a node answers send_name within milliseconds, so only
// a far end that stays silent (not a node: the port went stale) waits
// this long for the check to settle the connection.
const earlyWait = 100 * time.Millisecond

// settle waits for the check and decides the connection; after it,
// conn and err never change.
func (c *checkedConn) settle() (*checkedConn, error) {
	if c.final.Load() {
		return c, c.err
	}
	c.chk.begin()
	select {
	case <-c.chk.done:
	case <-c.closing:
	case <-c.s.ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settled {
		return c, c.err
	}
	c.settled = true
	to := c.port
	select {
	case <-c.chk.done:
		to = c.chk.port
	default:
	}
	switch {
	case c.closed:
		c.err = net.ErrClosed
	case c.s.ctx.Err() != nil:
		c.err = c.s.ctx.Err()
	case to == 0:
		c.err = errNodeGone
	case to == c.port && c.conn != nil:
	default:
		if c.conn != nil {
			c.conn.abort()
			c.conn = nil
		}
		if to != c.port {
			c.s.log.Debug("netstack: dial redirected by an EPMD check", "peer", c.p.Name, "cached", c.port, "now", to)
		}
		conn, err := c.s.dialOverlay(c.s.ctx, netip.AddrPortFrom(c.p.Address, to))
		if err == nil && len(c.kept) > 0 {
			if _, err = conn.Write(c.kept); err != nil {
				conn.abort()
			}
		}
		if err != nil {
			c.err = err
		} else {
			c.conn = conn
		}
	}
	if c.err != nil && c.conn != nil {
		c.conn.abort()
		c.conn = nil
	}
	c.kept = nil
	c.final.Store(true)
	return c, c.err
}

func (c *checkedConn) Read(b []byte) (int, error) {
	if !c.final.Load() {
		if err := c.readEarly(); err != nil {
			return 0, err
		}
	}
	if len(c.early) > 0 {
		n := copy(b, c.early)
		c.early = c.early[n:]
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.conn.Read(b)
}

// readEarly reads what the far end sends before the check ends, until it
// names the node asked for (the connection then settles at once: the
// check can only agree) or shows it will not (another name or status, TLS,
// an error, nothing within earlyWait); then it waits for the check. It
// leaves in early what Read may deliver: nothing if the connection was
// replaced or failed.
func (c *checkedConn) readEarly() error {
	var buf [512]byte
	defer func() {
		if c.earlyFrom != nil {
			c.earlyFrom.SetReadDeadline(noDeadline)
		}
	}()
	for !c.final.Load() {
		c.mu.Lock()
		conn := c.conn
		c.mu.Unlock()
		if conn == nil || c.chk.node == "" || len(c.early) > maxEarly {
			break
		}
		if conn != c.earlyFrom {
			c.early, c.earlyFrom = c.early[:0], conn
			conn.SetReadDeadline(deadlineIn(earlyWait))
		}
		n, err := conn.Read(buf[:])
		c.early = append(c.early, buf[:n]...)
		if err != nil {
			break
		}
		name, _, perr := erldist.ReplyNode(c.early)
		if errors.Is(perr, erldist.ErrReplyShort) {
			continue
		}
		if perr == nil && string(erldist.NodeAlive(name)) == c.chk.node && erldist.NameIsPeers(name, c.p) && c.confirm(conn) {
			c.s.epmd.confirmed(c.p, c.port, c.chk)
			return nil
		}
		break
	}
	if _, err := c.settle(); err != nil {
		c.early = nil
		return err
	}
	if c.conn != c.earlyFrom {
		c.early = nil
	}
	return nil
}

// confirm settles the connection on conn, if it is still unsettled there.
func (c *checkedConn) confirm(conn *overlayConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settled || c.conn != conn || c.closed {
		return false
	}
	c.settled = true
	c.kept = nil
	c.final.Store(true)
	return true
}

func (c *checkedConn) Write(b []byte) (int, error) {
	if c.final.Load() {
		if c.err != nil {
			return 0, c.err
		}
		return c.conn.Write(b)
	}
	c.mu.Lock()
	if !c.settled && len(c.kept)+len(b) <= maxKept {
		select {
		case <-c.chk.done:
		default:
			c.kept = append(c.kept, b...)
			if erldist.IsTLS(c.kept) {
				c.chk.begin() // no clear-text name will settle it
			}
			if c.conn != nil {
				if _, err := c.conn.Write(b); err != nil {
					// Refused or reset: the check decides what follows.
					c.conn.abort()
					c.conn = nil
				}
			}
			c.mu.Unlock()
			return len(b), nil
		}
	}
	c.mu.Unlock()
	if _, err := c.settle(); err != nil {
		return 0, err
	}
	return c.conn.Write(b)
}

func (c *checkedConn) CloseWrite() error {
	if _, err := c.settle(); err != nil {
		return err
	}
	return c.conn.CloseWrite()
}

func (c *checkedConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.closing)
	}
	if c.conn != nil {
		return c.conn.Close()
	}
	return nil
}

// current is the connection as it stands (nil before a redirect's dial).
func (c *checkedConn) current() *overlayConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

func (c *checkedConn) LocalAddr() net.Addr {
	if cur := c.current(); cur != nil {
		return cur.LocalAddr()
	}
	return &net.TCPAddr{}
}

func (c *checkedConn) RemoteAddr() net.Addr {
	if cur := c.current(); cur != nil {
		return cur.RemoteAddr()
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(c.p.Address, c.port))
}

// Deadlines apply to the connection as it stands: nothing sets one before
// the connection settles.
func (c *checkedConn) SetDeadline(t time.Time) error {
	if cur := c.current(); cur != nil {
		return cur.SetDeadline(t)
	}
	return nil
}

func (c *checkedConn) SetReadDeadline(t time.Time) error {
	if cur := c.current(); cur != nil {
		return cur.SetReadDeadline(t)
	}
	return nil
}

func (c *checkedConn) SetWriteDeadline(t time.Time) error {
	if cur := c.current(); cur != nil {
		return cur.SetWriteDeadline(t)
	}
	return nil
}
