// Package peers is the model of the peer file that every host of an overlay
// shares: networks, peers, keys, addresses, faces and the interconnect
// policy. It is pure: it reads bytes and answers questions. No sockets, no
// goroutines, no logging.
package peers

import (
	"net/netip"
	"time"
)

// File is a parsed and validated peer file.
type File struct {
	Name     string // the file name used in error messages
	Overlay  Overlay
	Networks []*Network // in file order
	Peers    []*Peer    // in file order; Peer.ID indexes this slice
	Rules    []*Rule    // interconnect rules, in file order
	Tests    []*Test
	// Serial is the file's version (`serial:`), 0 when it has none. Every
	// overlayctl edit increases it; a host that follows signed files never
	// applies a lower one than it runs.
	Serial uint64
	// Expires is when the file stops being applicable (`expires:`, RFC
	// 3339); zero when it never does.
	Expires time.Time

	// indexes, built by Parse
	peerByName map[string]*Peer
	peerByAddr map[netip.Addr]*Peer
	peerByFace map[netip.Addr]*Peer
	netByName  map[string]*Network
	policy     policy
}

// Overlay is the `overlay:` section.
type Overlay struct {
	Prefix netip.Prefix // every overlay address lies inside
	Faces  netip.Prefix // loopback faces, same bits as Prefix, inside 127.0.0.0/8
	Port   uint16       // UDP port of a peer whose endpoint names none
}

// Network is one entry of `networks:`.
type Network struct {
	Name   string
	Prefix netip.Prefix
	Line   int
	ID     int // index in File.Networks
}

// Peer is one entry of `peers:`.
type Peer struct {
	Name      string
	Network   *Network
	PublicKey Key
	Address   netip.Addr // overlay address
	Face      netip.Addr // loopback face: Overlay.Faces + offset of Address in Overlay.Prefix
	Endpoint  string     // "host:port" with the default port filled in; empty when the peer has none
	Keepalive time.Duration
	Expose    []PortRange // extra ports this host offers through the overlay (beyond Erlang's)
	Mode      Mode        // how the host joins: userspace (default), tun, or standard WireGuard tools
	// TCPEndpoint is "host:port" where the host also takes WireGuard over
	// TLS/TCP (overlayd --tcp-listen), for networks that block UDP; empty
	// when it takes none.
	TCPEndpoint string
	Transport   Transport // how others reach the host: UDP with TCP fallback (default) or TCP only
	Line        int
	ID          int // index in File.Peers
}

// PortRange is an inclusive range of TCP ports.
type PortRange struct{ Lo, Hi uint16 }

// Ports is the `ports:` list of a rule.
type Ports struct {
	All    bool        // no ports: list, every port
	Erlang bool        // `erlang`: 4369 plus the target's registered dist ports
	Ranges []PortRange // numbers and ranges
}

// Rule is one entry of `interconnect:`. A `between: [A, B]` rule is kept as
// one Rule with Both set; From is A and To is B.
type Rule struct {
	From, To string // a network or a peer name
	Both     bool
	Ports    Ports
	// Nodes, when set, limits the Erlang part of the rule (epmd lookups
	// and distribution ports) to nodes whose name (the part before @)
	// matches one of these patterns (`*` and `?` as in shell globs).
	Nodes []string
	File  string // the file name, so that a Decision can say where its rule is
	Line  int
	Index int // index in File.Rules

	src, dst int32 // policy selectors of From and To, see policy.edges
}

// Test is one entry of `tests:`.
type Test struct {
	From, To string // peer names
	Port     uint16
	Node     string // optional: the Erlang node asked for (port is then an Erlang port)
	Allow    bool   // expect: allow / deny
	Line     int

	from, to *Peer
	ok       bool // well-formed, so it can be run
}

// Reason says why a Decision came out as it did.
type Reason uint8

const (
	ReasonDefault     Reason = iota // no rule applies: deny across networks
	ReasonSameNetwork               // both peers are in one network: allow
	ReasonRule                      // Decision.Rule allowed it
	ReasonSelf                      // a peer talking to itself
	// ReasonNode: a rule allows the port, but no rule allows the Erlang
	// node asked for (Decision.Node); Decision.Rule is the first rule that
	// allows the port, whose `nodes:` leaves the node out.
	ReasonNode
)

// Decision is the verdict of the policy for one new connection.
// It is a small value, built without allocating; it carries the question
// (From, To, Port, Erlang) so that String can explain the answer.
type Decision struct {
	Allow  bool
	Reason Reason
	Erlang bool   // the port counted as an Erlang port (always for EPMDPort)
	Port   uint16 // the destination port asked about
	Node   string // the Erlang node asked for, when known (DecideNode)
	Rule   *Rule  // the deciding rule when Reason is ReasonRule or ReasonNode
	Ping   bool   // an ICMP echo (DecidePing), not a connection to Port
	From   *Peer  // who opens the connection
	To     *Peer  // whom it is opened to
}

// EPMDPort is the port of the Erlang port mapper; `erlang` in a rule always
// covers it.
const EPMDPort = 4369

// Key is a Curve25519 key, base64 in files and in `wg`, hex in UAPI.
type Key [32]byte
