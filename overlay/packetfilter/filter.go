// Package packetfilter enforces the overlay policy on packets, for hosts in
// TUN mode: a stateful filter between the kernel TUN device and WireGuard.
// It asks the same question as the userspace stack (peers.File.Judge) once
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
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/nodewire/nodewire/netstack/denylog"
	"github.com/nodewire/nodewire/peers"
)

// The filter's jobs, by file: this one is the device (Read, Write) and
// its counters; flows.go decides which flows exist (new ones, reloads,
// the distribution ports learned from epmd); inspect.go reads the first
// segment of an inbound flow to an Erlang port; resets.go writes the
// resets that refuse connections at once.

// Config tunes a Filter; zero values are the defaults.
type Config struct {
	Logger   *slog.Logger
	EPMDPort uint16 // 0: 4369
	MaxFlows int    // 0: 65536; a new flow beyond it is dropped
}

// Refusals are logged like the userspace stack's (package denylog): once
// per (peer pair, port, protocol, direction, reason) every logEvery, and
// at most denylog.PairBudget lines per pair and direction.
const (
	logEvery    = 10 * time.Second
	maxLogLines = 1024
)

// Filter is a tun.Device: it wraps the kernel TUN device handed to
// WireGuard. Read (kernel to WireGuard) checks outbound packets, Write
// (WireGuard to kernel) inbound ones.
type Filter struct {
	tun.Device
	log      *slog.Logger
	epmdPort uint16
	maxFlows int
	epoch    time.Time // the clock: nanoseconds since epoch, monotonic
	snap     atomic.Pointer[peers.Snapshot]

	mu         sync.Mutex // guards everything below; taken once per batch
	flows      map[flowKey]flow
	localDist  map[uint16]localNode // dist ports of local nodes
	remoteDist map[peerPort]int64   // dist ports of peers' nodes → expiry
	stats      map[string]*counters // per peer name
	refusals   *denylog.Logger
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
func New(dev tun.Device, cfg Config, snap *peers.Snapshot) *Filter {
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
		refusals:   denylog.New(cfg.Logger, "packetfilter: refused", logEvery, maxLogLines),
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
		if f.check(snap, bufs[i][offset:offset+sizes[i]], peers.Outbound, now) != pass {
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
		if f.check(snap, b[offset:], peers.Inbound, now) == pass {
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

func (f *Filter) count(peer string, dir peers.Direction) {
	c := f.stats[peer]
	if c == nil {
		c = new(counters)
		f.stats[peer] = c
	}
	if dir == peers.Inbound {
		c.deniedIn++
	} else {
		c.deniedOut++
	}
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

// logDenied logs a refused packet at Warn, as the userspace stack logs a
// refused connection ("decision" is the policy's verdict or what else
// refused it), under denylog's limits.
func (f *Filter) logDenied(dir peers.Direction, from, to string, p *packet, why string) {
	proto := protoName(p.proto)
	f.refusals.Refused(denylog.Key{Who: from + ">" + to, Port: p.dport, Proto: proto, Dir: dir, Why: why},
		"dir", dir.String(), "from", from, "to", to, "proto", proto, "port", p.dport, "decision", why)
}
