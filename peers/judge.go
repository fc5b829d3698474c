package peers

// Snapshot is the state a data plane works from: the peer file and this
// host in it. It is never modified; a reload swaps in a new one whole.
type Snapshot struct {
	File *File
	Self *Peer
}

// Direction says which end of a connection the asking host is.
type Direction uint8

const (
	// Inbound: a peer opened the connection to this host.
	Inbound Direction = iota + 1
	// Outbound: this host opened it to a peer.
	Outbound
)

// String is the "dir" of logs and metrics: "in" or "out".
func (d Direction) String() string {
	switch d {
	case Inbound:
		return "in"
	case Outbound:
		return "out"
	}
	return "?"
}

// Conn is the question "may this connection exist?", as a data plane
// knows it when the connection opens or when a reload judges it again.
type Conn struct {
	From, To *Peer  // who opens it, and to whom
	Port     uint16 // the destination port; epmd's is always EPMDPort here
	// Erlang: Port is epmd's or a distribution port registered in To's
	// epmd, to Node when the name is known ("" judges the port alone).
	Erlang bool
	Node   string
	// Dir is the asking host's end. Inbound, the host is To (or, for
	// explain, answers as To would) and knows what it offers: a port
	// that is neither Erlang nor in To's expose is refused. Outbound,
	// that is left to To.
	Dir Direction
	// Echo: an ICMP echo in a TUN host's packet filter, asked as port 0
	// (only a rule allowing every port covers it); it needs no offer.
	Echo bool
}

// Verdict is Judge's answer.
type Verdict struct {
	// Policy is the interconnect's answer on the port (and node); it is
	// the whole answer unless NotOffered.
	Policy Decision
	// NotOffered: the policy allows the connection, but it comes in on a
	// port To does not offer (no node registered on it, not exposed).
	NotOffered bool
}

// Allow reports whether the connection may exist.
func (v Verdict) Allow() bool { return v.Policy.Allow && !v.NotOffered }

// String is the verdict for logs: the policy's decision, or why an
// allowed port is refused all the same.
func (v Verdict) String() string {
	if v.NotOffered {
		return "port not offered (no node registered on it, not exposed)"
	}
	return v.Policy.String()
}

// Judge answers "may this connection exist?" for every site that asks it:
// both data planes when a connection opens, both again on every reload,
// and explain. A plane adapts its sockets or packets to a Conn; it never
// re-derives the answer. Pure and allocation-free, as Decide.
//
// The answer is the policy's, then the offer's. A port known to be
// registered to a node is judged as that node's (DecideNode): the first
// rule allowing the port must name the node in its `nodes:`, or a later
// rule allowing the port must. That holds when the port is also exposed.
// `expose:` is the host's statement of what it serves, to whomever the
// policy lets in; it grants no peer anything. `nodes:` is the operator's
// statement that this source may reach only these Erlang nodes; the
// thing listening on a registered port is the node itself (the handshake
// names it), so exposing its port must not open the node to a peer whose
// rule leaves it out. An operator who wants the port reachable whatever
// is registered on it writes a rule for the port without `nodes:`: a
// rule that allows it and names no nodes allows every node.
func (f *File) Judge(c Conn) Verdict {
	v := Verdict{Policy: f.Decide(c.From, c.To, c.Port, c.Erlang)}
	if c.Erlang {
		f.judgeNode(&v.Policy, c.Node) // DecideNode
	} else if v.Policy.Allow && c.Dir == Inbound && !c.Echo {
		v.NotOffered = !c.To.Exposes(c.Port)
	}
	return v
}

// Exposes reports whether p lists port in its expose.
func (p *Peer) Exposes(port uint16) bool {
	for _, r := range p.Expose {
		if r.Contains(port) {
			return true
		}
	}
	return false
}
