package netstack

// The EPMD relay, both ends.
//
// Inbound (a peer's request to this host's epmd): epmd honours ALIVE2, KILL,
// STOP and DUMP from local sources, and a relayed connection is local, so
// the relay reads one framed request and passes only PORT_PLEASE2 (and NAMES
// when the policy grants the source Erlang's ports). It never forwards
// anything else.
//
// Outbound (a local node asking a peer's face): the policy is checked, the
// request passed on unfiltered (the destination filters), and an ok
// PORT2_RESP makes this host open a face listener on the announced port
// before the reply reaches the client, so the client's next dial finds it.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"

	"github.com/nodewire/nodewire/peers"
)

// relayEPMD serves one inbound EPMD connection from src (filter relay).
func (s *Stack) relayEPMD(client *overlayConn, src *peers.Peer, allowNames bool, tc *trackedConn) {
	tc.attach(client)
	if !s.track(tc) {
		return
	}
	defer s.conns.remove(tc)
	defer tc.close()

	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)

	client.SetReadDeadline(deadlineIn(epmdRequestTimeout))
	frame, body, err := ReadRequest(client, *bp, MaxRequestBody)
	if err != nil {
		if errors.Is(err, ErrRequestTooLarge) || errors.Is(err, ErrEmptyRequest) {
			tc.stats.deniedIn.Add(1)
			s.logDenied(dirIn, src.Name, s.snap.Load().Self.Name, s.epmdPort, "EPMD request refused: "+err.Error())
		} else {
			s.log.Debug("netstack: no EPMD request", "peer", src.Name, "err", err)
		}
		return
	}
	tc.stats.bytesIn.Add(uint64(len(frame)))
	tag := body[0]
	switch {
	case tag == TagPortPlease2Req:
	case tag == TagNamesReq && allowNames:
	default:
		why := "EPMD " + RequestName(tag) + " refused"
		if tag == TagNamesReq {
			why += ": policy does not grant the erlang ports"
		}
		tc.stats.deniedIn.Add(1)
		s.logDenied(dirIn, src.Name, s.snap.Load().Self.Name, s.epmdPort, why)
		return
	}

	target := netip.AddrPortFrom(s.snap.Load().Self.Face, s.epmdPort)
	epmd, err := dialLocal(s.ctx, target)
	if err != nil {
		s.logLimited(slog.LevelWarn, limitKey{who: "local epmd", port: s.epmdPort, dir: dirIn, why: "unreachable"},
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

	if tag == TagNamesReq {
		// The listing goes back as it comes; epmd closes when done.
		if _, err := copyCounted(client, epmd, *bp, &tc.stats.bytesOut); err != nil {
			s.log.Debug("netstack: relay NAMES reply", "peer", src.Name, "err", err)
		}
		return
	}

	reply, err := readPort2Resp(epmd, *bp)
	if err != nil {
		s.log.Debug("netstack: PORT2_RESP from local epmd", "err", err)
		return
	}
	if p, err := ParsePort2Resp(reply); err == nil && p.OK() {
		// Before the client can dial the port, accept it as a dist port.
		s.local.note(p.Port)
	}
	if _, err := client.Write(reply); err != nil {
		s.log.Debug("netstack: relay PORT2_RESP", "peer", src.Name, "err", err)
		return
	}
	tc.stats.bytesOut.Add(uint64(len(reply)))
	// Closing now (deferred) is what the Erlang client waits for.
}

// readPort2Resp reads a PORT2_RESP into buf: until it is complete or the
// sender closes. A reply that fills buf without ending is refused.
func readPort2Resp(r io.Reader, buf []byte) ([]byte, error) {
	n := 0
	for {
		if n > 0 && Port2RespComplete(buf[:n]) {
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

// copyCounted copies src to dst with buf until EOF, counting bytes.
func copyCounted(dst io.Writer, src io.Reader, buf []byte, count interface{ Add(uint64) uint64 }) (int64, error) {
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
			count.Add(uint64(n))
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return total, nil
			}
			return total, rerr
		}
	}
}

// proxyEPMD carries one local client's EPMD exchange to peer p's epmd. The
// policy was checked by the caller. A PORT_PLEASE2 reply is read whole: on
// ok, the face listener for the announced port is opened first; if it
// cannot be, the client gets a "not found" reply rather than an address
// that leads nowhere (or, worse, to a local process on the wildcard).
func (s *Stack) proxyEPMD(client *net.TCPConn, p *peers.Peer, tc *trackedConn) {
	tc.attach(client)
	if !s.track(tc) {
		return
	}
	defer s.conns.remove(tc)
	defer tc.close()

	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)

	client.SetReadDeadline(deadlineIn(epmdRequestTimeout))
	frame, body, err := ReadRequest(client, *bp, MaxRequestBody)
	if err != nil {
		s.log.Debug("netstack: no EPMD request from local client", "peer", p.Name, "err", err)
		return
	}
	client.SetReadDeadline(noDeadline)
	tag := body[0]

	remote, err := s.dialOverlay(s.ctx, netip.AddrPortFrom(p.Address, s.epmdPort))
	if err != nil {
		s.logLimited(slog.LevelInfo, limitKey{who: p.Name, port: s.epmdPort, dir: dirOut, why: "unreachable"},
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

	if tag != TagPortPlease2Req {
		// Anything else passes as a plain stream; the destination filters.
		Splice(client, remote, &tc.stats.bytesOut, &tc.stats.bytesIn)
		return
	}

	remote.SetReadDeadline(deadlineIn(epmdReplyTimeout))
	reply, err := readPort2Resp(remote, *bp)
	if err != nil {
		s.log.Debug("netstack: PORT2_RESP from peer", "peer", p.Name, "err", err)
		return
	}
	tc.stats.bytesIn.Add(uint64(len(reply)))
	if r, err := ParsePort2Resp(reply); err == nil && r.OK() {
		if err := s.faces.ensureDist(p, r.Port); err != nil {
			s.logLimited(slog.LevelWarn, limitKey{who: p.Name, port: r.Port, dir: dirOut, why: "face"},
				"netstack: cannot open face for a node's port", "peer", p.Name, "node", string(r.Name), "err", err)
			reply = []byte{TagPort2Resp, 1}
		}
	}
	client.SetWriteDeadline(deadlineIn(epmdReplyTimeout))
	if _, err := client.Write(reply); err != nil {
		s.log.Debug("netstack: write PORT2_RESP to local client", "peer", p.Name, "err", err)
	}
}
