package netstack

// The EPMD relay, both ends.
//
// Inbound (a peer's request to this host's epmd): epmd honours ALIVE2, KILL,
// STOP and DUMP from local sources, and a relayed connection is local, so
// the relay reads one framed request and passes only PORT_PLEASE2 (and NAMES
// when the policy grants the source Erlang's ports). It never forwards
// anything else. Rules that name nodes are enforced here: a PORT_PLEASE2 for
// a name the source may not reach is answered "not found", and a NAMES
// reply lists only the names it may reach.
//
// Outbound (a local node asking a peer's face): the policy is checked, the
// request passed on unfiltered (the destination filters), and an ok
// PORT2_RESP makes this host open a face listener on the announced port
// before the reply reaches the client, so the client's next dial finds it.
// A name asked before is answered from a cache, and the connection that
// follows is checked against it (epmdcache.go).
//
// Who closes a lookup's connection first matters: that end holds the
// 4-tuple in TIME-WAIT. On the destination it would sit on a forwarder
// with no listener, so gVisor drops a later SYN that reuses the tuple and
// the lookup waits a second for the retransmission. So the outbound proxy
// closes as soon as it has a whole PORT2_RESP, and the inbound relay, after
// answering, waits for that close before its own: TIME-WAIT lands on the
// source, whose port picker skips a port held by it (or, with TIME-WAIT
// reuse, takes it over after a second, ending its own TIME-WAIT; the
// destination then holds nothing for the tuple).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"

	"github.com/nodewire/nodewire/netstack/denylog"
	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/peers"
)

// relayEPMD serves one inbound EPMD connection from src (filter relay).
func (s *Stack) relayEPMD(client *overlayConn, src *peers.Peer, allowNames bool, tc *trackedConn) {
	s.serveEPMD(tc, client, func(buf []byte) { s.filterEPMD(client, src, allowNames, tc, buf) })
}

// serveEPMD runs one EPMD exchange on client while tc is registered (so
// Apply and Close can end it), with a pooled buffer, and closes tc after.
func (s *Stack) serveEPMD(tc *trackedConn, client io.Closer, exchange func(buf []byte)) {
	tc.attach(client)
	if !s.track(tc) {
		return
	}
	defer s.conns.remove(tc)
	defer tc.close()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	exchange(*bp)
}

// filterEPMD is relayEPMD's exchange: read one request, pass it to the
// local epmd only if the filter admits it, and relay the reply.
func (s *Stack) filterEPMD(client *overlayConn, src *peers.Peer, allowNames bool, tc *trackedConn, buf []byte) {
	client.SetReadDeadline(deadlineIn(epmdRequestTimeout))
	self := tc.snap.Self
	frame, body, err := erldist.ReadRequest(client, buf, erldist.MaxRequestBody)
	if err != nil {
		if errors.Is(err, erldist.ErrRequestTooLarge) || errors.Is(err, erldist.ErrEmptyRequest) {
			tc.stats.deniedIn.Add(1)
			s.countEPMD(peers.Inbound, src.Name, "malformed", false)
			s.refuse(peers.Inbound, src.Name, src.Name, self.Name, s.epmdPort, reasonEPMDRequest, "EPMD request refused: "+err.Error())
		} else {
			s.log.Debug("netstack: no EPMD request", "peer", src.Name, "err", err)
		}
		return
	}
	tc.stats.bytesIn.Add(uint64(len(frame)))
	tag := body[0]
	req := epmdRequestLabel(tag)
	switch {
	case tag == erldist.TagPortPlease2Req:
		if d := tc.snap.File.DecideNode(src, self, peers.EPMDPort, string(body[1:])); !d.Allow {
			// Answer "no such node", as epmd would: the client gives up at
			// once, and learns nothing about which names exist.
			tc.stats.deniedIn.Add(1)
			s.countEPMD(peers.Inbound, src.Name, req, false)
			s.countDecision(peers.Inbound, src.Name, d)
			s.refuse(peers.Inbound, src.Name, src.Name, self.Name, s.epmdPort, "", d.String())
			client.SetWriteDeadline(deadlineIn(epmdReplyTimeout))
			if _, err := client.Write([]byte{erldist.TagPort2Resp, 1}); err == nil {
				awaitSourceClose(client, src)
			}
			return
		}
	case tag == erldist.TagNamesReq && allowNames:
	default:
		why := "EPMD " + erldist.RequestName(tag) + " refused"
		if tag == erldist.TagNamesReq {
			why += ": policy does not grant the erlang ports"
		}
		tc.stats.deniedIn.Add(1)
		s.countEPMD(peers.Inbound, src.Name, req, false)
		s.refuse(peers.Inbound, src.Name, src.Name, self.Name, s.epmdPort, reasonEPMDRequest, why)
		return
	}
	s.countEPMD(peers.Inbound, src.Name, req, true)

	target := netip.AddrPortFrom(self.Face, s.epmdPort)
	epmd, err := dialLocal(s.ctx, target)
	if err != nil {
		s.logLimited(slog.LevelWarn, denylog.Key{Who: "local epmd", Port: s.epmdPort, Dir: peers.Inbound, Why: "unreachable"},
			"netstack: local epmd not reachable", "addr", target, "err", err)
		return
	}
	if !tc.attach(epmd) {
		return
	}
	epmd.SetDeadline(deadlineIn(epmdReplyTimeout))
	if _, err := epmd.Write(frame); err != nil {
		s.log.Debug("netstack: write to local epmd", "err", err)
		return
	}
	client.SetWriteDeadline(deadlineIn(epmdReplyTimeout))

	if tag == erldist.TagNamesReq {
		// The listing goes back with only the names the policy lets src
		// reach; epmd closes when done.
		reply, err := io.ReadAll(io.LimitReader(epmd, maxNamesReply+1))
		if err != nil || len(reply) > maxNamesReply {
			s.log.Debug("netstack: NAMES reply from local epmd", "peer", src.Name, "err", err, "bytes", len(reply))
			return
		}
		out, err := s.filterNames(reply, tc.snap, src)
		if err != nil {
			s.log.Debug("netstack: NAMES reply from local epmd", "peer", src.Name, "err", err)
			return
		}
		if _, err := client.Write(out); err != nil {
			s.log.Debug("netstack: relay NAMES reply", "peer", src.Name, "err", err)
			return
		}
		tc.stats.bytesOut.Add(uint64(len(out)))
		return
	}

	reply, err := readPort2Resp(epmd, buf)
	if err != nil {
		s.log.Debug("netstack: PORT2_RESP from local epmd", "err", err)
		return
	}
	if p, err := erldist.ParsePort2Resp(reply); err == nil && p.OK() {
		// Before the client can dial the port, accept it as a dist port.
		s.local.note(p.Port, string(p.Name))
	}
	if _, err := client.Write(reply); err != nil {
		s.log.Debug("netstack: relay PORT2_RESP", "peer", src.Name, "err", err)
		return
	}
	tc.stats.bytesOut.Add(uint64(len(reply)))
	// Closing (deferred) is what the Erlang client waits for; a userspace
	// source's proxy closes first.
	awaitSourceClose(client, src)
}

// awaitSourceClose waits, at most epmdCloseWait, for src to close its end
// of a lookup answered on client, when src is a userspace host: its
// overlayd closes first once it has the whole reply (forwardEPMD), so
// TIME-WAIT lands there and not on this host's forwarder (see the top of
// this file). Erlang on a TUN or WireGuard host dials here directly and
// waits for this end to close, so there is nothing to wait for. Close and
// Apply end the wait by closing client.
func awaitSourceClose(client *overlayConn, src *peers.Peer) {
	if src.Mode != peers.ModeUserspace {
		return
	}
	client.SetReadDeadline(deadlineIn(epmdCloseWait))
	var b [1]byte
	client.Read(b[:]) // EOF when the source closes; anything else ends the wait too
}

// readPort2Resp reads a PORT2_RESP into buf: until it is complete or the
// sender closes. A reply that fills buf without ending is refused.
func readPort2Resp(r io.Reader, buf []byte) ([]byte, error) {
	n := 0
	for {
		if n > 0 && erldist.Port2RespComplete(buf[:n]) {
			return buf[:n], nil
		}
		if n == len(buf) {
			return nil, fmt.Errorf("PORT2_RESP longer than %d bytes", len(buf))
		}
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			if errors.Is(err, io.EOF) && n > 0 {
				return buf[:n], nil // let the parser judge it
			}
			return nil, err
		}
	}
}

// proxyEPMD carries one local client's EPMD exchange to peer p's epmd. The
// policy was checked by the caller. A PORT_PLEASE2 reply is read whole: on
// ok, the face listener for the announced port is opened first; if it
// cannot be, the client gets a "not found" reply rather than an address
// that leads nowhere (or, worse, to a local process on the wildcard).
func (s *Stack) proxyEPMD(client *net.TCPConn, p *peers.Peer, tc *trackedConn) {
	s.serveEPMD(tc, client, func(buf []byte) { s.forwardEPMD(client, p, tc, buf) })
}

// forwardEPMD is proxyEPMD's exchange.
func (s *Stack) forwardEPMD(client *net.TCPConn, p *peers.Peer, tc *trackedConn, buf []byte) {
	client.SetReadDeadline(deadlineIn(epmdRequestTimeout))
	frame, body, err := erldist.ReadRequest(client, buf, erldist.MaxRequestBody)
	if err != nil {
		s.log.Debug("netstack: no EPMD request from local client", "peer", p.Name, "err", err)
		return
	}
	client.SetReadDeadline(noDeadline)
	tag := body[0]
	if tag == erldist.TagPortPlease2Req {
		// Checked here too, so a lookup the destination would refuse is
		// refused at once, and logged where the client runs.
		if d := tc.snap.File.DecideNode(tc.snap.Self, p, peers.EPMDPort, string(body[1:])); !d.Allow {
			tc.stats.deniedOut.Add(1)
			s.countEPMD(peers.Outbound, p.Name, epmdRequestLabel(tag), false)
			s.countDecision(peers.Outbound, p.Name, d)
			s.refuse(peers.Outbound, p.Name, tc.snap.Self.Name, p.Name, s.epmdPort, "", d.String())
			client.SetWriteDeadline(deadlineIn(epmdReplyTimeout))
			client.Write([]byte{erldist.TagPort2Resp, 1})
			return
		}
	}
	s.countEPMD(peers.Outbound, p.Name, epmdRequestLabel(tag), true)
	var name string // asked for, copied: the reply is read into buf
	if tag == erldist.TagPortPlease2Req {
		name = string(body[1:])
		client.SetWriteDeadline(deadlineIn(epmdReplyTimeout))
		if s.answerFromCache(client, p, name, frame) {
			return
		}
	}

	remote, err := s.dialOverlay(s.ctx, netip.AddrPortFrom(p.Address, s.epmdPort))
	if err != nil {
		s.logLimited(slog.LevelInfo, denylog.Key{Who: p.Name, Port: s.epmdPort, Dir: peers.Outbound, Why: "unreachable"},
			"netstack: peer epmd not reachable", "peer", p.Name, "err", err)
		client.SetLinger(0)
		return
	}
	if !tc.attach(remote) {
		return
	}
	if _, err := remote.Write(frame); err != nil {
		s.log.Debug("netstack: write EPMD request to peer", "peer", p.Name, "err", err)
		return
	}
	tc.stats.bytesOut.Add(uint64(len(frame)))

	if tag != erldist.TagPortPlease2Req {
		// Anything else passes as a plain stream; the destination filters.
		Splice(client, remote, &tc.stats.bytesOut, &tc.stats.bytesIn)
		return
	}

	remote.SetReadDeadline(deadlineIn(epmdReplyTimeout))
	reply, err := readPort2Resp(remote, buf)
	// The reply is whole: close first, so TIME-WAIT lands here (the peer's
	// relay waits for this close; see the top of this file).
	remote.Close()
	if err != nil {
		s.log.Debug("netstack: PORT2_RESP from peer", "peer", p.Name, "err", err)
		return
	}
	tc.stats.bytesIn.Add(uint64(len(reply)))
	if r, err := erldist.ParsePort2Resp(reply); err == nil && r.OK() {
		if err := s.faces.ensureDist(p, r.Port, string(r.Name)); err != nil {
			s.logLimited(slog.LevelWarn, denylog.Key{Who: p.Name, Port: r.Port, Dir: peers.Outbound, Why: "face"},
				"netstack: cannot open face for a node's port", "peer", p.Name, "node", string(r.Name), "err", err)
			reply = []byte{erldist.TagPort2Resp, 1}
		}
	}
	s.epmd.learn(p, name, reply)
	client.SetWriteDeadline(deadlineIn(epmdReplyTimeout))
	if _, err := client.Write(reply); err != nil {
		s.log.Debug("netstack: write PORT2_RESP to local client", "peer", p.Name, "err", err)
	}
}

// filterNames rebuilds a NAMES reply with only the nodes src may reach
// under snap, and notes every registered port and name on the way.
func (s *Stack) filterNames(reply []byte, snap *peers.Snapshot, src *peers.Peer) ([]byte, error) {
	epmdPort, names, err := erldist.ParseNames(reply)
	if err != nil {
		return nil, err
	}
	s.local.noteNames(names, nil)
	out := binary.BigEndian.AppendUint32(make([]byte, 0, len(reply)), epmdPort)
	for _, e := range names {
		if d := snap.File.DecideNode(src, snap.Self, peers.EPMDPort, e.Name); d.Allow {
			out = fmt.Appendf(out, "name %s at port %d\n", e.Name, e.Port)
		}
	}
	return out, nil
}
