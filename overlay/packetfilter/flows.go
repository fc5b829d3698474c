package packetfilter

// Which flows exist: a packet of no flow is judged (peers.File.Judge)
// and may open one; a flow's packets follow it (conntrack.go); epmd's
// replies teach which ports are Erlang's; a reload judges every flow again.

import (
	"time"

	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/peers"
)

// Timeouts of idle flows. An established TCP flow outlives Linux's default
// keepalive (2 h + 9×75 s), so a quiet but live connection is not cut.
const (
	synTTL     = time.Minute
	estTTL     = 3 * time.Hour
	closingTTL = time.Minute // both FINs seen: the last ACKs
	resetTTL   = 10 * time.Second
	revokedTTL = 30 * time.Second // a flow a reload denies: resets may still cross
	udpTTL     = 2 * time.Minute
	icmpTTL    = 30 * time.Second
	// learnedTTL is how long a port seen in a PORT2_RESP counts as a
	// distribution port: long enough for the dial that follows the lookup.
	learnedTTL    = time.Minute
	sweepInterval = 10 * time.Second
	maxRemoteDist = 4096
)

// check decides one packet. f.mu is held.
func (f *Filter) check(snap *peers.Snapshot, b []byte, dir peers.Direction, now int64) verdict {
	var p packet
	if !parse(b, &p) {
		return drop // IPv6 (the overlay is IPv4) or malformed
	}
	self := snap.Self
	var remote *peers.Peer
	if dir == peers.Inbound {
		if p.dst != self.Address || p.src == self.Address {
			f.logDenied(dir, p.src.String(), p.dst.String(), &p, "not addressed from a peer to this host")
			return drop
		}
		remote = snap.File.PeerByAddr(p.src)
	} else {
		if p.src != self.Address {
			return drop // not ours to send (the kernel picks the overlay address)
		}
		remote = snap.File.PeerByAddr(p.dst)
	}
	if remote == nil || remote == self {
		a := p.src
		if dir == peers.Outbound {
			a = p.dst
		}
		f.logDenied(dir, a.String(), self.Name, &p, "unknown address")
		return drop
	}
	if p.frag {
		f.logDenied(dir, remote.Name, self.Name, &p, "IP fragment")
		return drop
	}
	if p.icmpInner {
		// An ICMP error about a packet of a known flow (sent the other way).
		k, _ := keyOf(p.innerProto, p.isrc, p.sport, p.idst, p.dport)
		if fl, ok := f.flows[k]; ok && fl.expires > now && fl.state != stRevoked {
			return pass
		}
		return drop
	}

	k, srcIsA := keyOf(p.proto, p.src, p.sport, p.dst, p.dport)
	if fl, ok := f.flows[k]; ok && fl.expires > now {
		if v, done := f.follow(&fl, &p, srcIsA, dir, now); done {
			if v == pass && fl.inspect != inspectNone && dir == peers.Inbound && len(p.payload) > 0 && p.flags&tcpRST == 0 {
				if why := f.inspect(snap, &fl, &p, remote); why != "" {
					f.count(remote.Name, dir)
					f.logDenied(dir, remote.Name, self.Name, &p, why)
					f.refuseFlow(&fl, &p, now)
					v = drop
				}
				fl.inspect = inspectNone
			}
			f.flows[k] = fl
			if v == pass {
				f.snoop(&p, dir, remote, now)
			}
			return v
		}
		delete(f.flows, k) // a new SYN on a closed flow's ports: judge it anew
	}
	return f.open(snap, k, srcIsA, &p, dir, remote, now)
}

// open judges a packet that belongs to no flow: allowed first packets start
// one.
func (f *Filter) open(snap *peers.Snapshot, k flowKey, srcIsA bool, p *packet, dir peers.Direction, remote *peers.Peer, now int64) verdict {
	self := snap.Self
	fl := flow{initIsA: srcIsA, outbound: dir == peers.Outbound, remote: remote.Address}
	switch p.proto {
	case protoTCP:
		if p.flags&(tcpSYN|tcpACK|tcpRST) != tcpSYN {
			if dir == peers.Outbound && p.flags&tcpRST != 0 {
				return pass // the kernel resetting a connection it does not know: harmless
			}
			return drop // not a connection's first packet, and no flow: stale or forged
		}
		fl.state, fl.expires = stSyn, now+int64(synTTL)
	case protoUDP:
		fl.state, fl.expires = stEstablished, now+int64(udpTTL)
	case protoICMP:
		if p.icmpType != icmpEchoRequest {
			return drop
		}
		fl.state, fl.expires = stEstablished, now+int64(icmpTTL)
	default:
		f.logDenied(dir, remote.Name, self.Name, p, "protocol not carried (only TCP, UDP, ICMP)")
		return drop
	}
	port := p.dport
	if p.proto == protoICMP {
		port = 0 // ping: allowed where every port is
	}
	if dir == peers.Outbound {
		fl.localPort, fl.remotePort = p.sport, p.dport
	} else {
		fl.localPort, fl.remotePort = p.dport, p.sport
	}
	fl.port = port
	d, why := f.decide(snap, remote, dir, p.proto, port, now)
	if why != "" {
		f.count(remote.Name, dir)
		from, to := remote.Name, self.Name
		if dir == peers.Outbound {
			from, to = to, from
		}
		f.logDenied(dir, from, to, p, why)
		switch {
		case p.proto != protoTCP:
		case dir == peers.Outbound:
			f.refuse(p)
		case snap.File.Reaches(remote, self):
			// The peer may use some port here: a misconfigured client
			// fails at once. One with no way here learns nothing.
			f.answerReset(p)
		}
		return drop
	}
	fl.erlang = d.Erlang
	if len(f.flows) >= f.maxFlows {
		f.sweep(now)
		if len(f.flows) >= f.maxFlows {
			f.logDenied(dir, remote.Name, self.Name, p, "flow table full")
			return drop
		}
	}
	if dir == peers.Outbound && p.proto == protoTCP {
		fl.localNext, fl.haveSeq = p.seq+segLen(p), true
	}
	if dir == peers.Inbound && p.proto == protoTCP {
		fl.remoteNext = p.seq + 1
		switch {
		case p.dport == f.epmdPort && d.Reason == peers.ReasonRule:
			// Across networks, a rule's nodes list may limit what epmd
			// tells this peer. Same network: every node.
			fl.inspect = inspectEPMD
		case p.dport != f.epmdPort && fl.erlang:
			fl.inspect, fl.node = inspectSendName, d.Node
		}
		if fl.inspect != inspectNone && len(p.payload) > 0 {
			f.count(remote.Name, dir)
			f.logDenied(dir, remote.Name, self.Name, p, "data on a SYN to an Erlang port (erl never sends it)")
			return drop
		}
	}
	f.flows[k] = fl
	return pass
}

// decide is the policy for a new flow between this host and remote; why is
// empty when it is allowed, else the reason to log (the decision as
// Decision.String renders it, or what else refused it).
func (f *Filter) decide(snap *peers.Snapshot, remote *peers.Peer, dir peers.Direction, proto uint8, port uint16, now int64) (peers.Decision, string) {
	q := f.question(snap, remote, dir, proto, port)
	if proto == protoTCP && port != f.epmdPort {
		if dir == peers.Outbound {
			q.Erlang = f.remoteDist[peerPort{remote.Address, port}] > now
		} else if ln := f.localDist[port]; ln.expires > now {
			q.Erlang, q.Node = true, ln.name
		}
	}
	v := snap.File.Judge(q)
	if !v.Allow() {
		return v.Policy, v.String()
	}
	return v.Policy, ""
}

// question is the part of what a flow asks peers.File.Judge that the
// packet alone says: who, which way, which port (epmd's as
// peers.EPMDPort, an Erlang port), and whether it is an echo.
func (f *Filter) question(snap *peers.Snapshot, remote *peers.Peer, dir peers.Direction, proto uint8, port uint16) peers.Conn {
	q := peers.Conn{From: remote, To: snap.Self, Port: port, Dir: peers.Inbound, Echo: proto == protoICMP}
	if dir == peers.Outbound {
		q.From, q.To, q.Dir = snap.Self, remote, peers.Outbound
	}
	if proto == protoTCP && port == f.epmdPort {
		q.Port, q.Erlang = peers.EPMDPort, true
	}
	return q
}

// snoop learns distribution ports from epmd's PORT2_RESP replies: the
// local epmd's on their way out (ports local nodes listen on), a peer's on
// their way in (ports that count as Erlang when this host dials that peer).
func (f *Filter) snoop(p *packet, dir peers.Direction, remote *peers.Peer, now int64) {
	if p.proto != protoTCP || p.sport != f.epmdPort || len(p.payload) == 0 {
		return
	}
	r, err := erldist.ParsePort2Resp(p.payload)
	if err != nil || !r.OK() || r.Port == 0 {
		return
	}
	port := r.Port
	if dir == peers.Outbound {
		ln := f.localDist[port]
		if ln.name != string(r.Name) {
			ln.name = string(r.Name)
		}
		ln.expires = now + int64(learnedTTL)
		f.localDist[port] = ln
		return
	}
	pp := peerPort{remote.Address, port}
	if _, known := f.remoteDist[pp]; known || len(f.remoteDist) < maxRemoteDist {
		f.remoteDist[pp] = now + int64(learnedTTL)
	}
}

// maybeSweep drops expired flows and learned ports every sweepInterval.
func (f *Filter) maybeSweep(now int64) {
	if now >= f.nextSweep {
		f.sweep(now)
	}
}

func (f *Filter) sweep(now int64) {
	f.nextSweep = now + int64(sweepInterval)
	for k, fl := range f.flows {
		if fl.expires <= now {
			delete(f.flows, k)
		}
	}
	for p, ln := range f.localDist {
		if ln.expires <= now {
			delete(f.localDist, p)
		}
	}
	for p, exp := range f.remoteDist {
		if exp <= now {
			delete(f.remoteDist, p)
		}
	}
}

// Apply swaps in a new policy (on reload) and judges every live flow again
// under it. A flow it no longer allows is revoked: its local socket gets a
// reset at once, and the peer's next packet reaches the kernel, which
// answers with a reset of its own, so both ends see the connection close.
func (f *Filter) Apply(snap *peers.Snapshot) {
	f.snap.Store(snap)
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, fl := range f.flows {
		if fl.expires <= now || fl.state == stRevoked {
			continue
		}
		remote := snap.File.PeerByAddr(fl.remote)
		why := "peer removed"
		if remote != nil && remote != snap.Self {
			if why = f.decideAgain(snap, remote, fl.direction(), k.proto, fl); why == "" {
				continue
			}
		}
		name := fl.remote.String()
		if remote != nil {
			name = remote.Name
			f.countRevoked(remote.Name)
		}
		f.log.Warn("packetfilter: closed", "dir", fl.direction().String(), "peer", name, "proto", protoName(k.proto),
			"port", fl.port, "decision", why)
		fl.state, fl.expires = stRevoked, now+int64(revokedTTL)
		f.flows[k] = fl
		if k.proto == protoTCP && fl.haveSeq {
			f.resetRevoked(snap.Self, &fl)
		}
	}
}

// decideAgain judges a live flow under a new policy, as when it opened: the
// same port, Erlang (for the same node) if it counted as Erlang then.
func (f *Filter) decideAgain(snap *peers.Snapshot, remote *peers.Peer, dir peers.Direction, proto uint8, fl flow) string {
	q := f.question(snap, remote, dir, proto, fl.port)
	q.Erlang, q.Node = fl.erlang, fl.node
	if v := snap.File.Judge(q); !v.Allow() {
		return v.String()
	}
	return ""
}

// direction is the end of fl this host is.
func (fl *flow) direction() peers.Direction {
	if fl.outbound {
		return peers.Outbound
	}
	return peers.Inbound
}
