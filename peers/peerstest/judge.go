// Package peerstest holds what the tests of several packages share about
// the policy: one peer file and one table of connections with the answer
// each must get. Every site that asks "may this connection exist?" (both
// data planes when a connection opens and on reload, and explain) runs
// the same table, so they cannot drift apart again.
package peerstest

import (
	"testing"

	"github.com/nodewire/nodewire/peers"
)

// FileName is the name the fixture is parsed under; decisions cite it.
const FileName = "judge.yaml"

// fixture: payments reach each other freely; monitoring reaches payments'
// Erlang ports and 9100-9199, but only the node metrics; lab reaches
// payments' Erlang ports, every node. pay-1 exposes 7000, 9100 and 9150.
const fixture = `overlay:
  prefix: 10.77.0.0/16
networks:
  payments:   {prefix: 10.77.1.0/24}
  monitoring: {prefix: 10.77.2.0/24}
  lab:        {prefix: 10.77.3.0/24}
interconnect:
  - from: monitoring
    to: payments
    ports: [erlang, 9100-9199]
    nodes: [metrics]
  - from: lab
    to: payments
    ports: [erlang]
peers:
  pay-1:
    network: payments
    public_key: QjymiqCIuDApl2TzlrhKdwo9IxbBMjTroG0Flsln/XI=
    address: 10.77.1.1
    expose: [7000, 9100, 9150]
  pay-2:
    network: payments
    public_key: YEBb8v2Ra2dbW5FahRYJ09pWg+GjNN0G/HtCOmt0MNs=
    address: 10.77.1.2
  mon-1:
    network: monitoring
    public_key: xd7PDUbHFkyLnt6QYsXrX4poAcFNAGKVS/0cG2ypShY=
    address: 10.77.2.1
  lab-1:
    network: lab
    public_key: OZyoyjJ1/Ddv7UX/ZYGx1lAHKrt60eOXgZdb5dznlUk=
    address: 10.77.3.1
`

// File parses the fixture.
func File(t testing.TB) *peers.File {
	t.Helper()
	f, err := peers.Parse(FileName, []byte(fixture))
	if err != nil {
		t.Fatalf("peerstest fixture: %v", err)
	}
	return f
}

// Case is one connection and the answer every site must give. The asking
// host is To for an inbound case, From for an outbound one.
type Case struct {
	Name     string
	From, To string
	Port     uint16 // peers.EPMDPort for epmd
	Erlang   bool   // a port registered in To's epmd (to Node, if set)
	Node     string
	Dir      peers.Direction
	Echo     bool // an ICMP echo (TUN mode's filter only)

	Allow      bool
	NotOffered bool   // refused though the policy allows it
	Policy     string // prefix of the policy's Decision.String()
}

// Conn is the question c asks, with the peers of f.
func (c Case) Conn(f *peers.File) peers.Conn {
	return peers.Conn{From: f.Peer(c.From), To: f.Peer(c.To), Port: c.Port, Erlang: c.Erlang, Node: c.Node, Dir: c.Dir, Echo: c.Echo}
}

// Self is the asking host's peer name.
func (c Case) Self() string {
	if c.Dir == peers.Outbound {
		return c.From
	}
	return c.To
}

// Remote is the other end's peer name.
func (c Case) Remote() string {
	if c.Dir == peers.Outbound {
		return c.To
	}
	return c.From
}

const (
	in  = peers.Inbound
	out = peers.Outbound
)

// Cases is the table.
var Cases = []Case{
	{Name: "same network, plain port not offered", From: "pay-2", To: "pay-1", Port: 22, Dir: in,
		NotOffered: true, Policy: "allow same network payments"},
	{Name: "same network, exposed port", From: "pay-2", To: "pay-1", Port: 7000, Dir: in,
		Allow: true, Policy: "allow same network payments"},
	{Name: "same network, outbound plain port (the target judges its offer)", From: "pay-1", To: "pay-2", Port: 22, Dir: out,
		Allow: true, Policy: "allow same network payments"},
	{Name: "epmd under a rule with nodes", From: "mon-1", To: "pay-1", Port: peers.EPMDPort, Erlang: true, Dir: in,
		Allow: true, Policy: "allow rule judge.yaml:8 "},
	{Name: "epmd outbound", From: "mon-1", To: "pay-1", Port: peers.EPMDPort, Erlang: true, Dir: out,
		Allow: true, Policy: "allow rule judge.yaml:8 "},
	{Name: "epmd, no rule that way", From: "pay-1", To: "mon-1", Port: peers.EPMDPort, Erlang: true, Dir: in,
		Policy: "deny default (no rule allows payments -> monitoring port 4369)"},
	{Name: "dist port of a named node", From: "mon-1", To: "pay-1", Port: 40000, Erlang: true, Node: "metrics", Dir: in,
		Allow: true, Policy: "allow rule judge.yaml:8 "},
	{Name: "dist port of a node the rule leaves out", From: "mon-1", To: "pay-1", Port: 40001, Erlang: true, Node: "app", Dir: in,
		Policy: "deny node app (rule judge.yaml:8 "},
	{Name: "dist port, node name not known (outbound)", From: "mon-1", To: "pay-1", Port: 40001, Erlang: true, Dir: out,
		Allow: true, Policy: "allow rule judge.yaml:8 "},
	{Name: "dist port of a node under a rule without nodes", From: "lab-1", To: "pay-1", Port: 40001, Erlang: true, Node: "app", Dir: in,
		Allow: true, Policy: "allow rule judge.yaml:12 "},
	{Name: "exposed plain port in the rule's range", From: "mon-1", To: "pay-1", Port: 9100, Dir: in,
		Allow: true, Policy: "allow rule judge.yaml:8 "},
	// The disputed case: a port both exposed and registered to a node
	// the rule's nodes leave out is that node's, and refused (Judge).
	{Name: "exposed port registered to a node the rule leaves out", From: "mon-1", To: "pay-1", Port: 9150, Erlang: true, Node: "app", Dir: in,
		Policy: "deny node app (rule judge.yaml:8 "},
	{Name: "exposed port registered to a node the rule leaves out, outbound", From: "mon-1", To: "pay-1", Port: 9150, Erlang: true, Node: "app", Dir: out,
		Policy: "deny node app (rule judge.yaml:8 "},
	{Name: "exposed port registered to a named node", From: "mon-1", To: "pay-1", Port: 9150, Erlang: true, Node: "metrics", Dir: in,
		Allow: true, Policy: "allow rule judge.yaml:8 "},
	{Name: "port in the rule's range, neither registered nor exposed", From: "mon-1", To: "pay-1", Port: 9120, Dir: in,
		NotOffered: true, Policy: "allow rule judge.yaml:8 "},
	{Name: "port in the rule's range, outbound", From: "mon-1", To: "pay-1", Port: 9120, Dir: out,
		Allow: true, Policy: "allow rule judge.yaml:8 "},
	{Name: "exposed port no rule allows", From: "lab-1", To: "pay-1", Port: 7000, Dir: in,
		Policy: "deny default (no rule allows lab -> payments port 7000)"},
	{Name: "outbound, no rule", From: "pay-1", To: "lab-1", Port: 7000, Dir: out,
		Policy: "deny default (no rule allows payments -> lab port 7000)"},
	{Name: "echo, same network", From: "pay-2", To: "pay-1", Echo: true, Dir: in,
		Allow: true, Policy: "allow same network payments"},
	{Name: "echo under a rule with ports", From: "mon-1", To: "pay-1", Echo: true, Dir: in,
		Policy: "deny default (no rule allows monitoring -> payments port 0)"},
}
