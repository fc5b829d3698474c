package overlay

import (
	"context"
	"fmt"

	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/overlay/control"
	"github.com/nodewire/nodewire/peers"
)

// Explain judges a connection from one peer to another with the daemon's
// current peer file and the distribution ports it currently resolves.
// port 0 means 4369 (epmd).
func (d *Daemon) Explain(ctx context.Context, from, to string, port uint16) (*control.Explanation, error) {
	d.mu.Lock()
	f, self := d.file, d.self
	d.mu.Unlock()
	var ends [2]*peers.Peer
	for i, name := range []string{from, to} {
		if ends[i] = f.Peer(name); ends[i] == nil {
			hint := ""
			if f.Network(name) != nil {
				hint = " (" + name + " is a network; explain takes peers)"
			}
			return nil, fmt.Errorf("no peer %s in %s%s", name, d.cfg.PeerFile, hint)
		}
	}
	if port == 0 {
		port = peers.EPMDPort
	}
	ex := &control.Explanation{PeerFile: d.cfg.PeerFile}
	var nodes []erldist.NameEntry
	ops := d.ops()
	switch {
	case ops == nil:
		ex.Note = "this daemon runs in TUN mode: it judges ports, and does not track Erlang nodes"
	case ends[1].Name == self.Name || ends[0].Name == self.Name:
		ex.Known = true
		var err error
		if nodes, err = ops.ErlangPorts(ctx, ends[1].Name); err != nil {
			ex.Note = err.Error()
		}
	default:
		ex.Note = fmt.Sprintf("this daemon is %s: it knows the nodes of its own host and the ports other hosts' epmd announced to it, not those of %s as %s sees them", self.Name, ends[1].Name, ends[0].Name)
	}
	explain(f, ends[0], ends[1], port, nodes, ex)
	return ex, nil
}

// explain fills in ex's verdict on a connection from one peer of f to
// another: the port judged as the node's when nodes (those ex.Known says
// the daemon sees on to) register it, as to would judge it.
func explain(f *peers.File, from, to *peers.Peer, port uint16, nodes []erldist.NameEntry, ex *control.Explanation) {
	q := peers.Conn{From: from, To: to, Port: port, Erlang: port == peers.EPMDPort, Dir: peers.Inbound}
	for _, n := range nodes {
		if n.Port == port {
			q.Erlang, q.Node = true, n.Name
			ex.Node = n.Name
		}
		nd := f.Judge(peers.Conn{From: from, To: to, Port: n.Port, Erlang: true, Node: n.Name, Dir: peers.Inbound}).Policy
		ex.Nodes = append(ex.Nodes, control.NodeVerdict{Name: n.Name, Port: n.Port, Allow: nd.Allow, Decision: nd.String()})
	}
	v := f.Judge(q)
	if ex.Known && v.NotOffered {
		ex.Note = fmt.Sprintf("the policy allows port %d, but no node of %s is registered on it and it is not exposed: a connection would be refused as not offered", port, to.Name)
	}
	dec := v.Policy
	ex.Decision, ex.Allow, ex.Erlang = dec.String(), dec.Allow, dec.Erlang
}
