package netstack

import (
	"context"
	"sort"

	"github.com/nodewire/nodewire/netstack/erldist"
)

// ErlangPorts returns the Erlang nodes this Stack currently resolves for
// peer, with their distribution ports: for this host, what its epmd
// answers to NAMES (asked at most once a second); for another peer, the
// ports its epmd announced in PORT2_RESPs relayed here (the face listeners
// opened for them). Sorted by port. For `explain` and status: the same
// knowledge the data plane judges connections by.
func (s *Stack) ErlangPorts(ctx context.Context, peer string) ([]erldist.NameEntry, error) {
	snap := s.snap.Load()
	if peer != snap.Self.Name {
		return s.faces.distPorts(peer), nil
	}
	entries, err := s.local.current(ctx)
	out := append([]erldist.NameEntry(nil), entries...)
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out, err
}

// RemoteErlangPorts is ErlangPorts for every other peer at once, by peer
// name: the nodes this Stack learned from their epmd replies.
func (s *Stack) RemoteErlangPorts() map[string][]erldist.NameEntry {
	return s.faces.allDistPorts("")
}
