package peers

import (
	"slices"
	"strconv"
	"strings"
)

// policy is the interconnect rules, indexed at Parse time so that Decide
// costs a few map lookups and binary searches, whatever the number of
// peers and rules.
type policy struct {
	// edges holds, per (source, destination) selector pair, the rules that
	// let source open connections to destination. Selectors are network
	// IDs, and len(Networks)+peer ID for rules naming a peer.
	edges map[uint64]*ruleIndex
	// named says, per peer ID, whether some rule names the peer itself;
	// most peers are not, and Decide then skips the peer lookups.
	named []bool
	nNets int32
}

// ruleIndex answers "which is the first of these rules that allows port?"
// in O(log n): the port space is cut into intervals, each labelled with the
// first rule whose ports cover it.
type ruleIndex struct {
	any    *Rule    // the edge's first rule in file order, whatever its ports
	erlang *Rule    // first rule with `erlang` (or every port): it allows any Erlang port
	starts []uint16 // starts[i] is the first port of interval i; starts[0] is 0
	first  []*Rule  // first[i] is the first rule covering interval i, or nil
}

func edgeKey(src, dst int32) uint64 { return uint64(uint32(src))<<32 | uint64(uint32(dst)) }

func buildPolicy(f *File) policy {
	pol := policy{
		edges: make(map[uint64]*ruleIndex),
		named: make([]bool, len(f.Peers)),
		nNets: int32(len(f.Networks)),
	}
	lists := make(map[uint64][]*Rule)
	add := func(src, dst int32, r *Rule) {
		k := edgeKey(src, dst)
		list := lists[k]
		if n := len(list); n > 0 && list[n-1] == r {
			return // between: [a, a]
		}
		lists[k] = append(list, r)
	}
	for _, r := range f.Rules {
		for _, sel := range []int32{r.src, r.dst} {
			if sel >= pol.nNets {
				pol.named[sel-pol.nNets] = true
			}
		}
		add(r.src, r.dst, r)
		if r.Both {
			add(r.dst, r.src, r)
		}
	}
	for k, list := range lists {
		pol.edges[k] = newRuleIndex(list)
	}
	return pol
}

// newRuleIndex indexes rules, which are in file order.
func newRuleIndex(rules []*Rule) *ruleIndex {
	ix := &ruleIndex{any: rules[0]}
	// Cut the port space at every range boundary.
	cuts := []int{0}
	for _, r := range rules {
		if ix.erlang == nil && (r.Ports.Erlang || r.Ports.All) {
			ix.erlang = r
		}
		for _, pr := range r.Ports.Ranges {
			cuts = append(cuts, int(pr.Lo), int(pr.Hi)+1)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	if cuts[len(cuts)-1] > 65535 {
		cuts = cuts[:len(cuts)-1]
	}
	first := make([]*Rule, len(cuts))
	// Label intervals in rule order; next skips labelled intervals so
	// that each is visited about once however many rules cover it.
	next := make([]int, len(cuts)+1)
	for i := range next {
		next[i] = i
	}
	find := func(i int) int {
		for next[i] != i {
			next[i] = next[next[i]]
			i = next[i]
		}
		return i
	}
	label := func(lo, hi int, r *Rule) {
		a, _ := slices.BinarySearch(cuts, lo)
		b, found := slices.BinarySearch(cuts, hi+1)
		if !found {
			b = len(cuts)
		}
		for i := find(a); i < b; i = find(i + 1) {
			first[i] = r
			next[i] = i + 1
		}
	}
	for _, r := range rules {
		if r.Ports.All {
			label(0, 65535, r)
		}
		for _, pr := range r.Ports.Ranges {
			label(int(pr.Lo), int(pr.Hi), r)
		}
	}
	// Merge neighbours with the same label.
	for i, c := range cuts {
		if i == 0 || first[i] != first[i-1] {
			ix.starts = append(ix.starts, uint16(c))
			ix.first = append(ix.first, first[i])
		}
	}
	return ix
}

// lookup returns the first rule that allows port, or nil.
func (ix *ruleIndex) lookup(port uint16, erlang bool) *Rule {
	// The last interval starting at or before port.
	lo, hi := 0, len(ix.starts)
	for hi-lo > 1 {
		m := int(uint(lo+hi) >> 1)
		if ix.starts[m] <= port {
			lo = m
		} else {
			hi = m
		}
	}
	r := ix.first[lo]
	if erlang && ix.erlang != nil && (r == nil || ix.erlang.Index < r.Index) {
		r = ix.erlang
	}
	return r
}

// Decide is the policy: may from open a TCP connection to port of to?
// erlang says the caller knows port to be a distribution port registered in
// to's epmd (EPMDPort always counts as erlang). Peers in one network reach
// each other freely; across networks the first rule in file order that
// allows the port decides; otherwise the connection is denied. Pure and
// allocation-free: it runs on every new connection. from and to must be
// peers of f; any other peer is denied.
func (f *File) Decide(from, to *Peer, port uint16, erlang bool) Decision {
	d := Decision{From: from, To: to, Port: port, Erlang: erlang || port == EPMDPort}
	if f.settle(&d) {
		return d
	}
	pol := &f.policy
	fn, tn := int32(from.Network.ID), int32(to.Network.ID)
	fp, tp := pol.nNets+int32(from.ID), pol.nNets+int32(to.ID)
	best := pol.first(fn, tn, nil, port, d.Erlang)
	fromNamed, toNamed := pol.named[from.ID], pol.named[to.ID]
	if fromNamed {
		best = pol.first(fp, tn, best, port, d.Erlang)
	}
	if toNamed {
		best = pol.first(fn, tp, best, port, d.Erlang)
	}
	if fromNamed && toNamed {
		best = pol.first(fp, tp, best, port, d.Erlang)
	}
	if best != nil {
		d.Allow, d.Reason, d.Rule = true, ReasonRule, best
	}
	return d
}

// Reaches reports whether from may open any connection at all to to: same
// network, or some rule from one to the other, whatever its ports. A host
// answers a peer that does not reach it with silence (nothing to learn by
// probing), and one that does with a reset on ports it may not use.
func (f *File) Reaches(from, to *Peer) bool {
	d := Decision{From: from, To: to}
	if f.settle(&d) {
		return d.Allow
	}
	for _, ix := range f.policy.edgesBetween(from, to) {
		if ix != nil {
			return true
		}
	}
	return false
}

// DecidePing is the policy on ICMP echo (ping) from from to to. A
// userspace host answers a peer that reaches it on some port (Reaches), so
// that ping shows whether the path and the policy's first step are there;
// so does a standard WireGuard peer, whose configuration holds every host
// that reaches it. A TUN host's packet filter passes echo, either way, only
// where every port is allowed (same network, or a rule without ports). Rule
// is the first rule, in file order, that decides it.
func (f *File) DecidePing(from, to *Peer) Decision {
	if from != nil && from.Mode == ModeTUN || to != nil && to.Mode == ModeTUN {
		d := f.Decide(from, to, 0, false)
		d.Ping = true
		return d
	}
	d := Decision{From: from, To: to, Ping: true}
	if f.settle(&d) {
		return d
	}
	for _, ix := range f.policy.edgesBetween(from, to) {
		if ix != nil && (d.Rule == nil || ix.any.Index < d.Rule.Index) {
			d.Rule = ix.any
		}
	}
	if d.Rule != nil {
		d.Allow, d.Reason = true, ReasonRule
	}
	return d
}

// settle decides d where no rule is needed: an end that is not a peer of
// f is denied; a peer reaches itself and its own network. It reports
// whether d is decided.
func (f *File) settle(d *Decision) bool {
	switch {
	case !f.owns(d.From) || !f.owns(d.To):
		return true
	case d.From == d.To:
		d.Allow, d.Reason = true, ReasonSelf
		return true
	case d.From.Network == d.To.Network:
		d.Allow, d.Reason = true, ReasonSameNetwork
		return true
	}
	return false
}

// edgesBetween is the rules from one peer of f to another, by selector
// pair: network to network, then with the source, the destination, and
// both named as peers. Entries are nil where no rule is.
func (pol *policy) edgesBetween(from, to *Peer) [4]*ruleIndex {
	fn, tn := int32(from.Network.ID), int32(to.Network.ID)
	fp, tp := pol.nNets+int32(from.ID), pol.nNets+int32(to.ID)
	return [4]*ruleIndex{
		pol.edges[edgeKey(fn, tn)], pol.edges[edgeKey(fp, tn)],
		pol.edges[edgeKey(fn, tp)], pol.edges[edgeKey(fp, tp)],
	}
}

// first returns the earlier of best and the first rule from src to dst
// that allows port.
func (pol *policy) first(src, dst int32, best *Rule, port uint16, erlang bool) *Rule {
	ix := pol.edges[edgeKey(src, dst)]
	if ix == nil {
		return best
	}
	if r := ix.lookup(port, erlang); r != nil && (best == nil || r.Index < best.Index) {
		return r
	}
	return best
}

// owns reports whether p is one of f's peers, placed in a network.
func (f *File) owns(p *Peer) bool {
	return p != nil && p.ID >= 0 && p.ID < len(f.Peers) && f.Peers[p.ID] == p &&
		p.Network != nil && len(f.policy.named) == len(f.Peers)
}

// String renders a decision for logs and `explain`, naming the deciding
// rule's file:line so operators can find it:
// "allow same network payments",
// "allow rule peers.yaml:12 (monitoring -> payments ports [erlang])",
// "deny default (no rule allows payments -> monitoring port 4369)",
// "deny node secret (rule peers.yaml:12 (...) allows the port but not this node)".
func (d Decision) String() string {
	var b strings.Builder
	b.WriteString(verdict(d.Allow))
	switch d.Reason {
	case ReasonSelf:
		b.WriteString(" self")
		if d.From != nil {
			b.WriteString(" " + d.From.Name)
		}
	case ReasonSameNetwork:
		b.WriteString(" same network")
		if d.From != nil && d.From.Network != nil {
			b.WriteString(" " + d.From.Network.Name)
		}
	case ReasonRule:
		b.WriteString(" rule")
		if d.Rule != nil {
			b.WriteString(" " + d.Rule.Pos() + " (" + d.Rule.String() + ")")
		}
	case ReasonNode:
		b.WriteString(" node " + d.Node + " (")
		if d.Rule != nil {
			b.WriteString("rule " + d.Rule.Pos() + " (" + d.Rule.String() + ") allows the port but not this node")
		}
		b.WriteString(")")
	default:
		b.WriteString(" default")
		if d.From != nil && d.To != nil && d.From.Network != nil && d.To.Network != nil {
			b.WriteString(" (no rule allows " + d.From.Network.Name + " -> " + d.To.Network.Name + " " + d.port() + ")")
		}
	}
	return b.String()
}

// why is the short reason of a test failure: "rule peers.yaml:5".
func (d Decision) why() string {
	switch d.Reason {
	case ReasonSelf:
		return "self"
	case ReasonSameNetwork:
		if d.From != nil && d.From.Network != nil {
			return "same network " + d.From.Network.Name
		}
		return "same network"
	case ReasonRule:
		if d.Rule != nil {
			return "rule " + d.Rule.Pos()
		}
		return "rule"
	case ReasonNode:
		if d.Rule != nil {
			return "node " + d.Node + " not in rule " + d.Rule.Pos()
		}
		return "node " + d.Node
	}
	return "default"
}

func (d Decision) port() string {
	if d.Ping {
		if d.From != nil && d.From.Mode == ModeTUN || d.To != nil && d.To.Mode == ModeTUN {
			return "on every port, which ping with a TUN host needs"
		}
		return "on any port, which ping needs"
	}
	s := "port " + strconv.Itoa(int(d.Port))
	if d.Erlang && d.Port != EPMDPort {
		s += " (erlang)"
	}
	if d.Node != "" {
		s += " node " + d.Node
	}
	return s
}

// Pos is where the rule is written: "peers.yaml:12".
func (r *Rule) Pos() string { return r.File + ":" + strconv.Itoa(r.Line) }

// String renders the rule: "monitoring -> payments ports [erlang]", with
// "<->" for between.
func (r *Rule) String() string {
	arrow := " -> "
	if r.Both {
		arrow = " <-> "
	}
	s := r.From + arrow + r.To + " ports " + r.Ports.String()
	if len(r.Nodes) > 0 {
		s += " nodes [" + strings.Join(r.Nodes, ", ") + "]"
	}
	return s
}

// String names the reason as Decision.String does: "default", "same
// network", "rule" or "self".
func (r Reason) String() string {
	switch r {
	case ReasonSameNetwork:
		return "same network"
	case ReasonRule:
		return "rule"
	case ReasonSelf:
		return "self"
	case ReasonNode:
		return "node"
	}
	return "default"
}
