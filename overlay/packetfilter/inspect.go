package packetfilter

import (
	"errors"
	"fmt"

	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/peers"
)

// inspect judges the first segment the peer sends on an inbound flow to an
// Erlang port, before the kernel sees it: why is empty when it may pass.
// erl writes each EPMD request and the send_name message whole, in one
// segment; anything else is refused.
func (f *Filter) inspect(snap *peers.Snapshot, fl *flow, p *packet, remote *peers.Peer) (why string) {
	if p.seq != fl.remoteNext {
		return "first segment out of order (not at the start of the stream)"
	}
	b := p.payload
	switch fl.inspect {
	case inspectEPMD:
		body, rest, err := erldist.ParseRequest(b, erldist.MaxRequestBody)
		switch {
		case errors.Is(err, erldist.ErrRequestTooLarge):
			return "EPMD request refused: " + err.Error()
		case err != nil || len(rest) != 0:
			return "EPMD request not whole in the first segment"
		}
		switch body[0] {
		case erldist.TagPortPlease2Req:
			d := snap.File.DecideNode(remote, snap.Self, peers.EPMDPort, string(body[1:]))
			if !d.Allow {
				return "PORT_PLEASE2 refused: " + d.String()
			}
		case erldist.TagNamesReq:
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
