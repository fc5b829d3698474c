package netstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/peers"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// forwarder takes every TCP SYN to this host's overlay address (any port:
// nothing listens in the stack) and decides, per connection, whether to
// carry it to this host's face. The source peer is the one whose overlay
// address the SYN comes from; WireGuard's cryptokey routing has already
// authenticated it.
type forwarder struct {
	s   *Stack
	tcp *tcp.Forwarder
}

func newForwarder(s *Stack) *forwarder {
	f := &forwarder{s: s}
	f.tcp = tcp.NewForwarder(s.ip, 0, maxInFlight, f.handle)
	return f
}

// handle runs on a goroutine gVisor starts for each SYN. Every path calls
// r.Complete exactly once: with a reset when refused.
func (f *forwarder) handle(r *tcp.ForwarderRequest) {
	growStack()
	s := f.s
	if !s.group.enter() {
		r.Complete(true)
		return
	}
	defer s.group.leave()

	id := r.ID()
	snap := s.snap.Load()
	self := snap.Self
	srcAddr := netip.AddrFrom4(id.RemoteAddress.As4())
	port := id.LocalPort
	src := snap.File.PeerByAddr(srcAddr)
	if src == nil || src.Name == self.Name {
		r.Complete(false) // not a peer: no answer at all
		s.refuse(peers.Inbound, srcAddr.String(), srcAddr.String(), self.Name, port, reasonUnknownSource, "unknown source address")
		return
	}
	st := s.stats.peer(src.Name)
	// deny refuses; reason is "" for a policy decision (counted by the
	// caller), else the label of the other refusal. A peer the policy lets
	// reach this host at all gets a reset, so a misconfigured client fails
	// at once; one from a network with no way here gets no answer on any
	// port, so probing teaches it nothing (an honest nodewire peer has
	// refused at its own end already).
	reaches := snap.File.Reaches(src, self)
	deny := func(reason, why string) {
		st.deniedIn.Add(1) // before the answer, so whoever sees it sees the count
		r.Complete(reaches)
		s.refuse(peers.Inbound, src.Name, src.Name, self.Name, port, reason, why)
	}
	if !st.enterPending() {
		// Dropped without a reset, as by a full SYN backlog: a real
		// client retries its SYN (a burst of connections still gets
		// through, a little later); a flood just costs nothing.
		st.deniedIn.Add(1)
		r.Complete(false)
		s.refuse(peers.Inbound, src.Name, src.Name, self.Name, port, reasonPeerLimit, "SYN dropped: too many connections from this peer in setup or open")
		return
	}
	pending := true
	setupDone := func() {
		if pending {
			pending = false
			st.leavePending()
		}
	}
	defer setupDone()

	c, v := judgeIn(snap, src, port, s.epmdPort, func() (string, bool) {
		node, erlang, err := s.local.lookup(s.ctx, port)
		if err != nil {
			s.log.Debug("netstack: local epmd not answering NAMES", "err", err)
		}
		return node, erlang
	})
	if v.NotOffered {
		deny(reasonNotOffered, v.String())
		return
	}
	s.countDecision(peers.Inbound, src.Name, v.Policy)
	if !v.Allow() {
		deny("", v.String())
		return
	}
	if port == s.epmdPort {
		if s.ctx.Err() != nil {
			r.Complete(true)
			return
		}
		conn, err := acceptOverlay(r)
		if err != nil {
			s.log.Debug("netstack: inbound handshake failed", "peer", src.Name, "port", port, "err", err)
			return
		}
		setupDone()
		tc := s.newTracked(snap, src, peers.Inbound, peers.EPMDPort, true)
		tc.epmd = true
		s.relayEPMD(conn, src, grantsErlang(v.Policy), tc)
		return
	}
	erlang, node := c.Erlang, c.Node

	// Dial the local side first, so a port nobody listens on is refused
	// with a reset, as it would be without the overlay.
	target := netip.AddrPortFrom(self.Face, port)
	local, err := dialLocal(s.ctx, target)
	if err != nil {
		r.Complete(true)
		s.log.Debug("netstack: inbound target not reachable", "peer", src.Name, "target", target, "err", err)
		return
	}
	if s.ctx.Err() != nil { // closing: do not start a handshake Close must abort
		local.Close()
		r.Complete(true)
		return
	}
	conn, err := acceptOverlay(r)
	if err != nil {
		local.Close()
		s.log.Debug("netstack: inbound handshake failed", "peer", src.Name, "port", port, "err", err)
		return
	}
	named := false // send_name named its node in clear text: the answer is relayed first
	if erlang {
		// A distribution port: the node named in the handshake must be
		// the source peer's.
		var why string
		named, why = s.checkSendName(conn, local, src)
		if why != "" {
			st.deniedIn.Add(1)
			local.SetLinger(0)
			local.Close()
			conn.abort()
			s.refuse(peers.Inbound, src.Name, src.Name, self.Name, port, reasonNodeName, why)
			return
		}
	}
	setupDone()
	tc := s.newTracked(snap, src, peers.Inbound, port, erlang)
	tc.node = node
	if !named || node == "" {
		s.carry(tc, local, conn, nil)
		return
	}
	s.carry(tc, local, conn, func() { s.relayReply(local, conn, port, node) })
}

// replyWait bounds how long relayReply waits for the local node to answer
// send_name (it does at once); after it, the connection is carried as is.
const replyWait = time.Second

// relayReply passes the local node's answer to send_name (its status and,
// if ok, its challenge, which names it) from local to conn in one write,
// then returns; carry copies the rest. Two things come of it:
//   - The status and the challenge, which the node writes apart, cross the
//     overlay as one segment: one WireGuard packet and one pure ACK fewer per
//     cold connect, and the dialling node loses nothing by it (it needs both
//     before it sends again).
//   - A node that names itself node, the name its port is known for here,
//     proves the port is still its distribution port: the port is noted as
//     if a PORT2_RESP had just passed (localPorts.note). A peer with a cached
//     EPMD answer (epmdcache.go) no longer asks this host's epmd, so without
//     it the port's note expired after learnedTTL and from then on an
//     inbound connection waited for a NAMES query to the local epmd (its
//     answer is reused for namesTTL).
//
// Anything else (another status, another name, an error, no answer within
// replyWait) passes what was read and notes nothing. The dialling node
// sends nothing after send_name until it has the status, so nothing waits
// in the other direction meanwhile.
func (s *Stack) relayReply(local *net.TCPConn, conn *overlayConn, port uint16, node string) {
	var buf [512]byte
	n := 0
	local.SetReadDeadline(deadlineIn(replyWait))
	for n < len(buf) {
		m, err := local.Read(buf[n:])
		n += m
		if err != nil {
			break
		}
		name, _, perr := erldist.ReplyNode(buf[:n])
		if errors.Is(perr, erldist.ErrReplyShort) {
			continue
		}
		if perr == nil && string(erldist.NodeAlive(name)) == node {
			s.local.note(port, node)
		}
		break
	}
	local.SetReadDeadline(noDeadline)
	if n > 0 {
		// A failed write leaves conn broken: carry then ends at once.
		conn.Write(buf[:n])
	}
}

// judgeIn asks peers.File.Judge about a connection from src to port of
// this host, epmdPort being the local epmd's. lookup says which node, if
// any, the local epmd registered port to; it is asked only when the answer
// may depend on it, so a scan from a peer with no rule costs no epmd
// queries.
func judgeIn(snap *peers.Snapshot, src *peers.Peer, port, epmdPort uint16, lookup func() (node string, erlang bool)) (peers.Conn, peers.Verdict) {
	c := peers.Conn{From: src, To: snap.Self, Port: port, Dir: peers.Inbound}
	if port == epmdPort {
		c.Port, c.Erlang = peers.EPMDPort, true
		return c, snap.File.Judge(c)
	}
	if !snap.Self.Exposes(port) {
		// Denied even as a registered dist port: denied as a plain one.
		asErlang := c
		asErlang.Erlang = true
		if v := snap.File.Judge(asErlang); !v.Allow() {
			return c, snap.File.Judge(c)
		}
	}
	c.Node, c.Erlang = lookup()
	return c, snap.File.Judge(c)
}

// checkSendName reads the distribution handshake's first message from the
// peer, refuses it (returning why) unless the node it names belongs to src,
// and passes the bytes read on to local. TLS distribution has no clear-text
// name and passes unchecked: its certificates identify the node. named
// says the message named a node in clear text.
func (s *Stack) checkSendName(conn *overlayConn, local *net.TCPConn, src *peers.Peer) (named bool, why string) {
	var buf [erldist.MaxSendName + 2]byte
	conn.SetReadDeadline(deadlineIn(sendNameTimeout))
	frame, name, err := erldist.ReadSendName(conn, buf[:])
	conn.SetReadDeadline(noDeadline)
	switch {
	case errors.Is(err, erldist.ErrSendNameTLS):
	case err != nil:
		return false, "distribution handshake refused: " + err.Error()
	case !erldist.NameIsPeers(name, src):
		return false, fmt.Sprintf("distribution handshake refused: node name %.300q is not peer %s's (face %v)", name, src.Name, src.Face)
	default:
		named = true
	}
	// A failed write leaves local broken: carry then ends at once.
	local.Write(frame)
	return named, ""
}

// newTracked describes a new connection to peer p under snap.
func (s *Stack) newTracked(snap *peers.Snapshot, p *peers.Peer, dir peers.Direction, port uint16, erlang bool) *trackedConn {
	return &trackedConn{
		peer:     p.Name,
		peerAddr: p.Address,
		peerKey:  p.PublicKey,
		selfAddr: snap.Self.Address,
		snap:     snap,
		port:     port,
		dir:      dir,
		erlang:   erlang,
		stats:    s.stats.peer(p.Name),
	}
}

// carry registers tc with both sockets and copies until both directions are
// done. local is the host socket, overlay the stack's. first, if not nil,
// runs once tc is registered (so Close and Apply can end it), before the
// copying.
func (s *Stack) carry(tc *trackedConn, local *net.TCPConn, overlay HalfCloser, first func()) {
	tc.attach(local)
	tc.attach(overlay)
	if !s.track(tc) {
		return
	}
	defer s.conns.remove(tc)
	if first != nil {
		first()
	}
	err := Splice(local, overlay, &tc.stats.bytesOut, &tc.stats.bytesIn)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("netstack: connection ended", "peer", tc.peer, "dir", tc.dir.String(), "port", tc.port, "err", err)
	}
}

// overlayConn is a connection through the stack. It keeps its endpoint,
// since gonet offers only an orderly close and a connection the policy
// ends should be reset.
type overlayConn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

// abort resets the connection.
func (c *overlayConn) abort() {
	c.ep.Abort()
	c.TCPConn.Close()
}

func newOverlayConn(wq *waiter.Queue, ep tcpip.Endpoint) *overlayConn {
	return &overlayConn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep}
}

// acceptOverlay completes the handshake of a forwarded SYN and returns the
// connection, tuned like every overlay connection.
func acceptOverlay(r *tcp.ForwarderRequest) (*overlayConn, error) {
	wq := new(waiter.Queue)
	ep, terr := r.CreateEndpoint(wq)
	if terr != nil {
		r.Complete(true)
		return nil, fmt.Errorf("create endpoint: %s", terr)
	}
	r.Complete(false)
	tuneOverlay(ep)
	return newOverlayConn(wq, ep), nil
}

// dialOverlay connects through the stack to addr (another peer's overlay
// address), giving up after overlayDialTimeout or when ctx is done.
func (s *Stack) dialOverlay(ctx context.Context, addr netip.AddrPort) (*overlayConn, error) {
	ctx, cancel := context.WithTimeout(ctx, overlayDialTimeout)
	defer cancel()
	wq := new(waiter.Queue)
	ep, terr := s.ip.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, wq)
	if terr != nil {
		return nil, fmt.Errorf("dial %v through the overlay: %s", addr, terr)
	}
	tuneOverlay(ep)
	entry, ready := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	full := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(addr.Addr().As4()), Port: addr.Port()}
	terr = ep.Connect(full)
	if _, started := terr.(*tcpip.ErrConnectStarted); started {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, fmt.Errorf("dial %v through the overlay: %w", addr, ctx.Err())
		case <-ready:
		}
		terr = ep.LastError()
	}
	if terr != nil {
		ep.Close()
		return nil, fmt.Errorf("dial %v through the overlay: %s", addr, terr)
	}
	return newOverlayConn(wq, ep), nil
}

// tuneOverlay sets keepalive and a user timeout, so a peer that vanishes
// (its host down, WireGuard gone) frees the connection within minutes.
func tuneOverlay(ep tcpip.Endpoint) {
	ep.SocketOptions().SetKeepAlive(true)
	idle := tcpip.KeepaliveIdleOption(keepaliveIdle)
	ep.SetSockOpt(&idle)
	interval := tcpip.KeepaliveIntervalOption(keepaliveInterval)
	ep.SetSockOpt(&interval)
	ep.SetSockOptInt(tcpip.KeepaliveCountOption, keepaliveCount)
	ut := tcpip.TCPUserTimeoutOption(userTimeout)
	ep.SetSockOpt(&ut)
}

// dialLocal connects to a host socket on loopback.
func dialLocal(ctx context.Context, addr netip.AddrPort) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: localDialTimeout, KeepAlive: -1}
	c, err := d.DialContext(ctx, "tcp4", addr.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// deadlineIn is now+d, for Set*Deadline.
func deadlineIn(d time.Duration) time.Time { return time.Now().Add(d) }

// noDeadline clears a deadline.
var noDeadline time.Time
