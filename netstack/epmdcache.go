package netstack

// Cached EPMD answers, userspace mode, outbound: the cold connect's first
// overlay crossing taken off its critical path.
//
// A PORT_PLEASE2 from a local node to a peer's face is answered at once
// with the last ok PORT2_RESP that peer's epmd gave for that name, and the
// real lookup runs at the same time (the "check"). The cached port is never
// trusted: it only names the face the node will dial, and nothing the node
// sends on that face leaves this host before the check has answered.
//   - The check finds the node at the same port: the connection goes ahead
//     (it was dialled while the check ran, and had sent nothing).
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
	"net/netip"
	"sync"
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

// epmdCheck is one confirming lookup: port is set before done closes.
type epmdCheck struct {
	done  chan struct{}
	port  uint16 // where the peer's epmd has the node now; 0: nowhere (or no answer)
	ended time.Time
}

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

// startCheck registers a check for p's face at port (replacing any).
func (c *epmdCache) startCheck(p *peers.Peer, port uint16) *epmdCheck {
	chk := &epmdCheck{done: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks[faceKey{p.Name, port}] = chk
	return chk
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
// request) from the cache, starting its check; false if it cannot (nothing
// cached, no face for the port, closing): the caller looks up as usual.
func (s *Stack) answerFromCache(client interface{ Write([]byte) (int, error) }, p *peers.Peer, name string, frame []byte) bool {
	reply := s.epmd.cached(p, name)
	if reply == nil {
		return false
	}
	r, err := erldist.ParsePort2Resp(reply)
	if err != nil || !r.OK() || s.faces.ensureDist(p, r.Port, name) != nil {
		return false
	}
	chk := s.epmd.startCheck(p, r.Port)
	req := append([]byte(nil), frame...)
	if !s.group.spawn(func() { s.checkEPMD(p, name, req, r.Port, chk) }) {
		s.epmd.finish(p, r.Port, chk, 0)
		return false
	}
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

// dialDist dials p's port for a local connection to its face. When the port
// came from a cached answer whose check is pending, it dials while the
// check runs and keeps that connection only if the check confirms the
// port; at another port it dials that one; at none it fails. Nothing is
// sent on a connection before dialDist returns it.
func (s *Stack) dialDist(p *peers.Peer, port uint16) (*overlayConn, error) {
	addr := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(p.Address, port) }
	chk := s.epmd.pending(p.Name, port)
	if chk == nil {
		return s.dialOverlay(s.ctx, addr(port))
	}
	select {
	case <-chk.done:
	default:
		type dialed struct {
			c   *overlayConn
			err error
		}
		res := make(chan dialed, 1)
		go func() { // waited for below
			c, err := s.dialOverlay(s.ctx, addr(port))
			res <- dialed{c, err}
		}()
		select {
		case <-chk.done:
		case <-s.ctx.Done():
		}
		d := <-res
		if s.ctx.Err() != nil {
			if d.c != nil {
				d.c.abort()
			}
			return nil, s.ctx.Err()
		}
		if chk.port == port {
			return d.c, d.err
		}
		if d.c != nil {
			d.c.abort()
		}
	}
	switch chk.port {
	case 0:
		return nil, errNodeGone
	case port:
	default:
		s.log.Debug("netstack: dial redirected by an EPMD check", "peer", p.Name, "cached", port, "now", chk.port)
	}
	return s.dialOverlay(s.ctx, addr(chk.port))
}
