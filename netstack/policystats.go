package netstack

import (
	"sort"
	"sync"
	"time"

	"github.com/nodewire/nodewire/netstack/denylog"
	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/peers"
)

// Counters of the policy at work, for metrics and status: every decision on
// a new connection (by peer, direction, verdict, reason and rule), every
// EPMD request (by peer, direction, request type and verdict), and the last
// refusal per peer. They are kept per connection or request, not per
// packet, so one mutex is cheap enough.

// Verdicts and reasons as labels. Policy reasons are peers.Reason's names
// (with '_' for spaces); the others are refusals that are not the policy's.
const (
	reasonNotOffered    = "not_offered"    // no node registered on the port, not exposed
	reasonEPMDRequest   = "epmd_request"   // an EPMD request the relay never passes (ALIVE2, KILL, ...)
	reasonUnknownSource = "unknown_source" // a source address that is no peer
	reasonNodeName      = "node_name"      // a send_name naming a node not of the source peer
)

// DecisionCount is how many new connections got one verdict.
type DecisionCount struct {
	Peer    string // the other end
	Dir     string // "in" (a peer connected here) or "out" (a local process to a peer's face)
	Verdict string // "allow" or "deny"
	Reason  string // self, same_network, rule, default, node, not_offered, epmd_request, unknown_source
	Rule    string // the deciding rule as file:line, or ""
	Count   uint64
}

// EPMDCount is how many EPMD requests of one type got one verdict.
type EPMDCount struct {
	Peer    string
	Dir     string
	Request string // port_please2, names, alive2, kill, stop, dump, other, malformed
	Verdict string // "relayed" or "refused"
	Count   uint64
}

// Refusal is one refused connection or request, as logged.
type Refusal struct {
	At       time.Time `json:"at"`
	Dir      string    `json:"dir"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Port     uint16    `json:"port"`
	Proto    string    `json:"proto,omitempty"` // "icmp" for a ping (Port then 0); "" for TCP
	Decision string    `json:"decision"`
}

type decisionKey struct{ peer, dir, verdict, reason, rule string }
type epmdKey struct{ peer, dir, request, verdict string }

// policyCounters is the zero-value-ready store of the counters above.
type policyCounters struct {
	mu        sync.Mutex
	decisions map[decisionKey]uint64
	epmd      map[epmdKey]uint64
	last      map[string]Refusal // by peer
}

func (c *policyCounters) decision(k decisionKey) {
	c.mu.Lock()
	if c.decisions == nil {
		c.decisions = make(map[decisionKey]uint64)
	}
	c.decisions[k]++
	c.mu.Unlock()
}

func (c *policyCounters) epmdRequest(k epmdKey) {
	c.mu.Lock()
	if c.epmd == nil {
		c.epmd = make(map[epmdKey]uint64)
	}
	c.epmd[k]++
	c.mu.Unlock()
}

func (c *policyCounters) refused(peer string, r Refusal) {
	c.mu.Lock()
	if c.last == nil {
		c.last = make(map[string]Refusal)
	}
	c.last[peer] = r
	c.mu.Unlock()
}

// reasonLabel names a policy reason as a metric label.
func reasonLabel(r peers.Reason) string {
	switch r {
	case peers.ReasonSameNetwork:
		return "same_network"
	case peers.ReasonRule:
		return "rule"
	case peers.ReasonSelf:
		return "self"
	case peers.ReasonNode:
		return "node"
	}
	return "default"
}

// epmdRequestLabel names an EPMD request tag as a metric label.
func epmdRequestLabel(tag byte) string {
	switch tag {
	case erldist.TagPortPlease2Req:
		return "port_please2"
	case erldist.TagNamesReq:
		return "names"
	case erldist.TagAlive2Req:
		return "alive2"
	case erldist.TagKillReq:
		return "kill"
	case erldist.TagStopReq:
		return "stop"
	case erldist.TagDumpReq:
		return "dump"
	}
	return "other"
}

// countDecision records the policy's verdict on a new connection.
func (s *Stack) countDecision(dir peers.Direction, peer string, d peers.Decision) {
	k := decisionKey{peer: peer, dir: dir.String(), verdict: "deny", reason: reasonLabel(d.Reason)}
	if d.Allow {
		k.verdict = "allow"
	}
	if d.Rule != nil {
		k.rule = d.Rule.Pos()
	}
	s.stats.policy.decision(k)
}

// refuse counts, remembers and logs a refusal. peer is the other end (the
// source address for an unknown source); reason is a label for refusals
// that are not a policy decision, "" for those that are (counted by
// countDecision).
func (s *Stack) refuse(dir peers.Direction, peer, from, to string, port uint16, reason, why string) {
	if reason != "" {
		s.stats.policy.decision(decisionKey{peer: peer, dir: dir.String(), verdict: "deny", reason: reason})
	}
	s.stats.policy.refused(peer, Refusal{At: time.Now(), Dir: dir.String(), From: from, To: to, Port: port, Decision: why})
	s.logDenied(dir, from, to, port, why)
}

// refusePing is refuse for an ICMP echo request from peer (or the source
// address of an unknown source) to this host. It is logged with
// proto=icmp instead of a port.
func (s *Stack) refusePing(peer, from, to, reason, why string) {
	if reason != "" {
		s.stats.policy.decision(decisionKey{peer: peer, dir: peers.Inbound.String(), verdict: "deny", reason: reason})
	}
	s.stats.policy.refused(peer, Refusal{At: time.Now(), Dir: peers.Inbound.String(), From: from, To: to, Proto: "icmp", Decision: why})
	s.logRefusal(denylog.Key{Who: from + ">" + to, Proto: "icmp", Dir: peers.Inbound, Why: why},
		"dir", peers.Inbound.String(), "from", from, "to", to, "proto", "icmp", "decision", why)
}

// countEPMD records one EPMD request and what became of it.
func (s *Stack) countEPMD(dir peers.Direction, peer, request string, relayed bool) {
	v := "refused"
	if relayed {
		v = "relayed"
	}
	s.stats.policy.epmdRequest(epmdKey{peer: peer, dir: dir.String(), request: request, verdict: v})
}

// PolicyCounters returns copies of the decision and EPMD counters, sorted
// so that output built from them is stable.
func (s *Stack) PolicyCounters() ([]DecisionCount, []EPMDCount) {
	c := &s.stats.policy
	c.mu.Lock()
	ds := make([]DecisionCount, 0, len(c.decisions))
	for k, n := range c.decisions {
		ds = append(ds, DecisionCount{k.peer, k.dir, k.verdict, k.reason, k.rule, n})
	}
	es := make([]EPMDCount, 0, len(c.epmd))
	for k, n := range c.epmd {
		es = append(es, EPMDCount{k.peer, k.dir, k.request, k.verdict, n})
	}
	c.mu.Unlock()
	sort.Slice(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		return a.Peer+"\x00"+a.Dir+"\x00"+a.Verdict+"\x00"+a.Reason+"\x00"+a.Rule <
			b.Peer+"\x00"+b.Dir+"\x00"+b.Verdict+"\x00"+b.Reason+"\x00"+b.Rule
	})
	sort.Slice(es, func(i, j int) bool {
		a, b := es[i], es[j]
		return a.Peer+"\x00"+a.Dir+"\x00"+a.Request+"\x00"+a.Verdict < b.Peer+"\x00"+b.Dir+"\x00"+b.Request+"\x00"+b.Verdict
	})
	return ds, es
}

// LastRefusals returns the last refusal per peer (by peer name).
func (s *Stack) LastRefusals() map[string]Refusal {
	c := &s.stats.policy
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]Refusal, len(c.last))
	for k, v := range c.last {
		out[k] = v
	}
	return out
}

// PacketCounts are the userspace stack's IP packet counters: every packet
// that came out of WireGuard into the stack (Received) or went from the
// stack into WireGuard (Sent), all peers together; and what was lost or
// sent again inside the stack, which the path did not cause and a bulk
// transfer pays for as for loss on the wire.
type PacketCounts struct {
	Received, Sent uint64
	// Dropped are packets the stack dropped, mostly TCP segments that
	// arrived while the connection's receive memory was full (gVisor's
	// DroppedPackets).
	Dropped uint64
	// LinkFull are packets the stack sent while the link's queue to
	// WireGuard was full (linkQueueLen): lost before the wire.
	LinkFull uint64
	// Retransmits are TCP segments sent again, Timeouts the
	// retransmission timeouts among them (the slow way to recover).
	Retransmits, Timeouts uint64
	// Recoveries count how TCP found its losses: fast recovery entered
	// (Fast), of it by SACK (SACK), tail loss probes (TLP), and the
	// recoveries the timestamps later showed needless (Spurious, and
	// SpuriousRTO for timeouts): a packet was late, not lost.
	Recoveries struct{ Fast, SACK, TLP, Spurious, SpuriousRTO uint64 }
}

// Packets reads the gVisor stack's IP and TCP counters and the link's.
func (s *Stack) Packets() PacketCounts {
	st := s.ip.Stats()
	pc := PacketCounts{Received: st.IP.PacketsReceived.Value(), Sent: st.IP.PacketsSent.Value(),
		Dropped: st.DroppedPackets.Value(), LinkFull: s.tun.link.full.Load(),
		Retransmits: st.TCP.Retransmits.Value(), Timeouts: st.TCP.Timeouts.Value()}
	r := &pc.Recoveries
	r.Fast, r.SACK, r.TLP = st.TCP.FastRecovery.Value(), st.TCP.SACKRecovery.Value(), st.TCP.TLPRecovery.Value()
	r.Spurious, r.SpuriousRTO = st.TCP.SpuriousRecovery.Value(), st.TCP.SpuriousRTORecovery.Value()
	return pc
}
