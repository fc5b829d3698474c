// Package packetfilter enforces the overlay policy on packets, for hosts in
// TUN mode: a stateful filter between the kernel TUN device and WireGuard.
// It asks the same question as the userspace stack (peers.File.Decide) once
// per new flow, remembers the flows it let through so their replies pass,
// and drops everything else, logging each refusal as the userspace mode
// does.
//
// What crosses:
//   - TCP: a SYN opens a flow if the policy allows it. Inbound, the port
//     must also be offered, as in userspace mode: epmd, a distribution port
//     the local epmd handed out in a PORT2_RESP (snooped on its way out), or
//     a port the host exposes. Outbound, a port counts as Erlang when it is
//     epmd or the peer's epmd gave it in a PORT2_RESP. A refused outbound
//     SYN is answered at once with a reset, so the local client fails fast.
//     A refused inbound SYN is answered with a reset too when the peer
//     reaches this host on some port (peers.File.Reaches), and not at all
//     when it reaches it on none, as in userspace mode.
//   - Erlang names, as in userspace mode: a distribution port counts for
//     the node epmd's PORT2_RESP named, so a rule's `nodes:` list decides
//     its SYN. The first segment a peer sends on an inbound connection to
//     an Erlang port is read before the kernel gets it: to epmd across
//     networks, a PORT_PLEASE2 for a node the rule leaves out, or a NAMES
//     under a rule with `nodes:`, resets the connection; to a distribution
//     port, a send_name whose node is not the source peer's does (package
//     erldist). erl writes each of these whole in one segment, so a first
//     segment that is not exactly one whole message is reset too.
//   - UDP: like TCP, without the Erlang ports (epmd and distribution are
//     TCP): outbound by the port rules, inbound only to exposed ports. Replies
//     pass while the flow is alive.
//   - ICMP: echo where every port is allowed (same network, or a rule with no
//     ports list), echo replies and errors only for a flow the filter knows.
//   - Anything else, IPv6, and IP fragments are dropped.
package packetfilter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/peers"
)

// Snapshot is the policy the filter enforces: the peer file and this host
// in it. It is swapped whole on reload.
type Snapshot struct {
	File *peers.File
	Self *peers.Peer
}

// Config tunes a Filter; zero values are the defaults.
type Config struct {
	Logger   *slog.Logger
	EPMDPort uint16 // 0: 4369
	MaxFlows int    // 0: 65536; a new flow beyond it is dropped
}

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
	// injectOffset is the headroom of packets the filter writes to the
	// kernel itself (resets); the TUN device needs room for its virtio header.
	injectOffset = 16
	// maxAnswers bounds the resets waiting to go to peers; a SYN flood from
	// a peer that reaches this host costs at most this many, the rest go
	// unanswered (the peer retries its SYN, as with a full backlog).
	maxAnswers = 256
)

// aLongTimeAgo is a read deadline in the past: it wakes a blocked Read.
var aLongTimeAgo = time.Unix(1, 0)

// Filter is a tun.Device: it wraps the kernel TUN device handed to
// WireGuard. Read (kernel to WireGuard) checks outbound packets, Write
// (WireGuard to kernel) inbound ones.
type Filter struct {
	tun.Device
	log      *slog.Logger
	epmdPort uint16
	maxFlows int
	epoch    time.Time // the clock: nanoseconds since epoch, monotonic
	snap     atomic.Pointer[Snapshot]

	mu         sync.Mutex // guards everything below; taken once per batch
	flows      map[flowKey]flow
	localDist  map[uint16]localNode // dist ports of local nodes
	remoteDist map[peerPort]int64   // dist ports of peers' nodes → expiry
	stats      map[string]*counters // per peer name
	limiter    map[limitKey]*limitState
	nextSweep  int64

	// answers are packets the filter itself sends to peers (resets of
	// refused connections), handed to WireGuard by the next Read. wake,
	// when the device supports read deadlines, interrupts a Read blocked
	// in the kernel so that they leave at once.
	answerMu sync.Mutex
	answers  [][]byte
	nAnswers atomic.Int32
	wake     *os.File
}

// localNode is a distribution port the local epmd handed out: the node it
// is registered to, and until when the port counts as Erlang.
type localNode struct {
	expires int64
	name    string
}

type peerPort struct {
	addr netip.Addr
	port uint16
}

type counters struct{ deniedIn, deniedOut, revoked uint64 }

// PeerStats is what the filter did with one peer's packets.
type PeerStats struct {
	Flows     int    // live flows now
	DeniedIn  uint64 // new flows from the peer refused
	DeniedOut uint64 // new flows to the peer refused
	Revoked   uint64 // flows a reload no longer allowed
}

// New wraps dev. snap must name a peer of its file as Self.
func New(dev tun.Device, cfg Config, snap *Snapshot) *Filter {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.EPMDPort == 0 {
		cfg.EPMDPort = peers.EPMDPort
	}
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = 1 << 16
	}
	f := &Filter{
		Device:     dev,
		log:        cfg.Logger,
		epmdPort:   cfg.EPMDPort,
		maxFlows:   cfg.MaxFlows,
		epoch:      time.Now(),
		flows:      make(map[flowKey]flow, 1024),
		localDist:  make(map[uint16]localNode),
		remoteDist: make(map[peerPort]int64),
		stats:      make(map[string]*counters),
		limiter:    make(map[limitKey]*limitState),
	}
	f.snap.Store(snap)
	// The kernel TUN device is a pollable file: a read deadline interrupts
	// its Read. Without one, answers wait for the next packet the kernel
	// sends.
	if file := dev.File(); file != nil && file.SetReadDeadline(time.Time{}) == nil {
		f.wake = file
	}
	return f
}

func (f *Filter) now() int64 { return int64(time.Since(f.epoch)) }

// Read reads packets the kernel sends into the overlay and blanks (size 0,
// which WireGuard skips) those the policy refuses. The filter's own answers
// to peers go first.
func (f *Filter) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var (
		n   int
		err error
	)
	for {
		if n = f.takeAnswers(bufs, sizes, offset); n > 0 {
			return n, nil
		}
		n, err = f.Device.Read(bufs, sizes, offset)
		if n <= 0 && f.wake != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			// Woken for an answer: clear the deadline before taking the
			// answers, so one queued after this wakes the next Read.
			f.wake.SetReadDeadline(time.Time{})
			continue
		}
		break
	}
	if n <= 0 {
		return n, err
	}
	snap := f.snap.Load()
	now := f.now()
	f.mu.Lock()
	f.maybeSweep(now)
	for i := 0; i < n; i++ {
		if sizes[i] < 1 {
			continue
		}
		if f.check(snap, bufs[i][offset:offset+sizes[i]], dirOut, now) != pass {
			sizes[i] = 0
		}
	}
	f.mu.Unlock()
	return n, err
}

// Write passes to the kernel the packets from WireGuard that the policy
// admits. It reorders bufs in place (WireGuard does not reuse the order).
func (f *Filter) Write(bufs [][]byte, offset int) (int, error) {
	snap := f.snap.Load()
	now := f.now()
	kept := bufs[:0]
	f.mu.Lock()
	f.maybeSweep(now)
	for _, b := range bufs {
		if f.check(snap, b[offset:], dirIn, now) == pass {
			kept = append(kept, b)
		}
	}
	f.mu.Unlock()
	if len(kept) == 0 {
		return 0, nil
	}
	return f.Device.Write(kept, offset)
}

type verdict uint8

const (
	pass verdict = iota
	drop
)

type direction uint8

const (
	dirIn  direction = iota // from a peer, through WireGuard, to this host
	dirOut                  // from this host to a peer
)

func (d direction) String() string {
	if d == dirIn {
		return "in"
	}
	return "out"
}

// check decides one packet. f.mu is held.
func (f *Filter) check(snap *Snapshot, b []byte, dir direction, now int64) verdict {
	var p packet
	if !parse(b, &p) {
		return drop // IPv6 (the overlay is IPv4) or malformed
	}
	self := snap.Self
	var remote *peers.Peer
	if dir == dirIn {
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
		if dir == dirOut {
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
			if v == pass && fl.inspect != inspectNone && dir == dirIn && len(p.payload) > 0 && p.flags&tcpRST == 0 {
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
func (f *Filter) open(snap *Snapshot, k flowKey, srcIsA bool, p *packet, dir direction, remote *peers.Peer, now int64) verdict {
	self := snap.Self
	fl := flow{initIsA: srcIsA, outbound: dir == dirOut, remote: remote.Address}
	switch p.proto {
	case protoTCP:
		if p.flags&(tcpSYN|tcpACK|tcpRST) != tcpSYN {
			if dir == dirOut && p.flags&tcpRST != 0 {
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
	if dir == dirOut {
		fl.localPort, fl.remotePort = p.sport, p.dport
	} else {
		fl.localPort, fl.remotePort = p.dport, p.sport
	}
	fl.port = port
	d, why := f.decide(snap, remote, dir, p.proto, port, now)
	if why != "" {
		f.count(remote.Name, dir)
		from, to := remote.Name, self.Name
		if dir == dirOut {
			from, to = to, from
		}
		f.logDenied(dir, from, to, p, why)
		switch {
		case p.proto != protoTCP:
		case dir == dirOut:
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
	if dir == dirOut && p.proto == protoTCP {
		fl.localNext, fl.haveSeq = p.seq+segLen(p), true
	}
	if dir == dirIn && p.proto == protoTCP {
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

// inspect judges the first segment the peer sends on an inbound flow to an
// Erlang port, before the kernel sees it: why is empty when it may pass.
// erl writes each EPMD request and the send_name message whole, in one
// segment; anything else is refused.
func (f *Filter) inspect(snap *Snapshot, fl *flow, p *packet, remote *peers.Peer) (why string) {
	if p.seq != fl.remoteNext {
		return "first segment out of order (not at the start of the stream)"
	}
	b := p.payload
	switch fl.inspect {
	case inspectEPMD:
		if len(b) < 3 || int(binary.BigEndian.Uint16(b)) != len(b)-2 {
			return "EPMD request not whole in the first segment"
		}
		switch b[2] {
		case tagPortPlease2Req:
			d := snap.File.DecideNode(remote, snap.Self, peers.EPMDPort, string(b[3:]))
			if !d.Allow {
				return "PORT_PLEASE2 refused: " + d.String()
			}
		case tagNamesReq:
			d := snap.File.Decide(remote, snap.Self, peers.EPMDPort, true)
			if d.Reason == peers.ReasonRule && len(d.Rule.Nodes) > 0 {
				return fmt.Sprintf("NAMES refused: rule %s lets this peer see only nodes %v", d.Rule.Pos(), d.Rule.Nodes)
			}
		}
		// Anything else (ALIVE2, KILL, STOP, DUMP) epmd itself refuses
		// from a non-local address.
	case inspectSendName:
		name, n, err := erldist.SplitSendName(b)
		switch {
		case errors.Is(err, erldist.ErrSendNameTLS):
			// inet_tls_dist: no clear-text name; its certificates
			// identify the node.
		case err != nil:
			return "distribution handshake refused: " + err.Error()
		case n != len(b):
			return "distribution handshake refused: send_name not alone in the first segment"
		case !erldist.NameIsPeers(name, remote):
			return fmt.Sprintf("distribution handshake refused: node name %.300q is not peer %s's (address %v)", name, remote.Name, remote.Address)
		}
	}
	return ""
}

// refuseFlow resets both ends of inbound flow fl, whose first segment p
// the filter refused: the local socket (as if the peer reset it, at the
// sequence number it expects) and the peer's (through WireGuard).
func (f *Filter) refuseFlow(fl *flow, p *packet, now int64) {
	fromPeer := packet{src: p.dst, sport: p.dport, dst: p.src, dport: p.sport}
	buf := make([]byte, injectOffset+40) // refusals only: not the steady state
	n := tcpReset(buf[injectOffset:], &fromPeer, p.seq, fl.localNext)
	if _, err := f.Device.Write([][]byte{buf[:injectOffset+n]}, injectOffset); err != nil {
		f.log.Debug("packetfilter: could not write a reset to the kernel", "err", err)
	}
	if fl.haveSeq {
		b := make([]byte, 40)
		f.answer(b[:tcpReset(b, p, fl.localNext, p.seq+segLen(p))])
	}
	fl.state, fl.expires, fl.inspect = stRefused, now+int64(resetTTL), inspectNone
}

// decide is the policy for a new flow between this host and remote; why is
// empty when it is allowed, else the reason to log (the decision as
// Decision.String renders it, or what else refused it).
func (f *Filter) decide(snap *Snapshot, remote *peers.Peer, dir direction, proto uint8, port uint16, now int64) (peers.Decision, string) {
	q := f.question(snap, remote, dir, proto, port)
	if proto == protoTCP && port != f.epmdPort {
		if dir == dirOut {
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
func (f *Filter) question(snap *Snapshot, remote *peers.Peer, dir direction, proto uint8, port uint16) peers.Conn {
	q := peers.Conn{From: remote, To: snap.Self, Port: port, Dir: peers.Inbound, Echo: proto == protoICMP}
	if dir == dirOut {
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
func (f *Filter) snoop(p *packet, dir direction, remote *peers.Peer, now int64) {
	if p.proto != protoTCP || p.sport != f.epmdPort || len(p.payload) == 0 {
		return
	}
	port, ok := port2Resp(p.payload)
	if !ok {
		return
	}
	if dir == dirOut {
		ln := f.localDist[port]
		if name := port2RespName(p.payload); ln.name != string(name) {
			ln.name = string(name)
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

// refuse answers a refused outbound SYN with a reset, as if from the peer.
func (f *Filter) refuse(p *packet) {
	buf := make([]byte, injectOffset+40) // refusals only: not the steady state
	n := tcpReset(buf[injectOffset:], p, 0, p.seq+segLen(p))
	if _, err := f.Device.Write([][]byte{buf[:injectOffset+n]}, injectOffset); err != nil {
		f.log.Debug("packetfilter: could not write a reset to the kernel", "err", err)
	}
}

// answerReset sends the peer a reset for its refused SYN p, as a kernel
// with no listener would: the dialling socket gets ECONNREFUSED at once.
func (f *Filter) answerReset(p *packet) {
	b := make([]byte, 40) // refusals only: not the steady state
	f.answer(b[:tcpReset(b, p, 0, p.seq+segLen(p))])
}

// answer queues pkt for WireGuard to carry to its peer, and wakes the
// reader. Beyond maxAnswers waiting, pkt is dropped.
func (f *Filter) answer(pkt []byte) {
	f.answerMu.Lock()
	if len(f.answers) >= maxAnswers {
		f.answerMu.Unlock()
		return
	}
	f.answers = append(f.answers, pkt)
	f.nAnswers.Add(1)
	f.answerMu.Unlock()
	if f.wake != nil {
		f.wake.SetReadDeadline(aLongTimeAgo)
	}
}

// takeAnswers moves queued answers into bufs and returns how many.
func (f *Filter) takeAnswers(bufs [][]byte, sizes []int, offset int) int {
	if f.nAnswers.Load() == 0 {
		return 0
	}
	f.answerMu.Lock()
	defer f.answerMu.Unlock()
	n := 0
	for n < len(bufs) && n < len(f.answers) {
		sizes[n] = copy(bufs[n][offset:], f.answers[n])
		n++
	}
	f.answers = append(f.answers[:0], f.answers[n:]...)
	f.nAnswers.Add(-int32(n))
	return n
}

func (f *Filter) count(peer string, dir direction) {
	c := f.stats[peer]
	if c == nil {
		c = new(counters)
		f.stats[peer] = c
	}
	if dir == dirIn {
		c.deniedIn++
	} else {
		c.deniedOut++
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
func (f *Filter) Apply(snap *Snapshot) {
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
			dir := dirIn
			if fl.outbound {
				dir = dirOut
			}
			if why = f.decideAgain(snap, remote, dir, k.proto, fl); why == "" {
				continue
			}
		}
		name := fl.remote.String()
		if remote != nil {
			name = remote.Name
			f.countRevoked(remote.Name)
		}
		f.log.Warn("packetfilter: closed", "dir", dirString(fl.outbound), "peer", name, "proto", protoName(k.proto),
			"port", fl.port, "decision", why)
		fl.state, fl.expires = stRevoked, now+int64(revokedTTL)
		f.flows[k] = fl
		if k.proto == protoTCP && fl.haveSeq {
			local := packet{src: snap.Self.Address, sport: fl.localPort, dst: fl.remote, dport: fl.remotePort}
			buf := make([]byte, injectOffset+40)
			n := tcpReset(buf[injectOffset:], &local, fl.localAck, fl.localNext)
			if _, err := f.Device.Write([][]byte{buf[:injectOffset+n]}, injectOffset); err != nil {
				f.log.Debug("packetfilter: could not write a reset to the kernel", "err", err)
			}
		}
	}
}

// decideAgain judges a live flow under a new policy, as when it opened: the
// same port, Erlang (for the same node) if it counted as Erlang then.
func (f *Filter) decideAgain(snap *Snapshot, remote *peers.Peer, dir direction, proto uint8, fl flow) string {
	q := f.question(snap, remote, dir, proto, fl.port)
	q.Erlang, q.Node = fl.erlang, fl.node
	if v := snap.File.Judge(q); !v.Allow() {
		return v.String()
	}
	return ""
}

func (f *Filter) countRevoked(peer string) {
	c := f.stats[peer]
	if c == nil {
		c = new(counters)
		f.stats[peer] = c
	}
	c.revoked++
}

// Stats reports, per peer of the current policy, live flows and refusals.
func (f *Filter) Stats() map[string]PeerStats {
	snap := f.snap.Load()
	now := f.now()
	out := make(map[string]PeerStats, len(snap.File.Peers))
	f.mu.Lock()
	defer f.mu.Unlock()
	byAddr := make(map[netip.Addr]int, len(snap.File.Peers))
	for _, fl := range f.flows {
		if fl.expires > now && fl.state != stRevoked {
			byAddr[fl.remote]++
		}
	}
	for _, p := range snap.File.Peers {
		if p == snap.Self {
			continue
		}
		st := PeerStats{Flows: byAddr[p.Address]}
		if c := f.stats[p.Name]; c != nil {
			st.DeniedIn, st.DeniedOut, st.Revoked = c.deniedIn, c.deniedOut, c.revoked
		}
		out[p.Name] = st
	}
	return out
}

func dirString(outbound bool) string {
	if outbound {
		return "out"
	}
	return "in"
}

func protoName(proto uint8) string {
	switch proto {
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case protoICMP:
		return "icmp"
	}
	return "ip"
}

// limitKey is what one log line is about, so that a peer retrying a SYN
// logs once per interval, not once per packet.
type limitKey struct {
	who   string
	port  uint16
	proto uint8
	dir   direction
	why   string
}

type limitState struct {
	at         int64
	suppressed int
}

const (
	logEvery    = 10 * time.Second
	maxLogLines = 1024
)

// logDenied logs a refused packet at Warn, as the userspace stack logs a
// refused connection ("decision" is the policy's verdict or what else
// refused it), at most once per logEvery for one (peer, port, direction,
// reason). f.mu is held.
func (f *Filter) logDenied(dir direction, from, to string, p *packet, why string) {
	k := limitKey{who: from + ">" + to, port: p.dport, proto: p.proto, dir: dir, why: why}
	now := f.now()
	st := f.limiter[k]
	if st != nil && now-st.at < int64(logEvery) {
		st.suppressed++
		return
	}
	if st == nil {
		if len(f.limiter) >= maxLogLines {
			clear(f.limiter)
		}
		st = new(limitState)
		f.limiter[k] = st
	}
	attrs := []any{"dir", dir.String(), "from", from, "to", to, "proto", protoName(p.proto), "port", p.dport, "decision", why}
	if st.suppressed > 0 {
		attrs = append(attrs, "suppressed", st.suppressed)
	}
	st.at, st.suppressed = now, 0
	f.log.Warn("packetfilter: refused", attrs...)
}
