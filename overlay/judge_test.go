package overlay

import (
	"strings"
	"testing"

	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/overlay/control"
	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/peerstest"
)

// TestJudgeSites runs the shared table (peerstest.Cases) through explain,
// as the daemon on the target host answers it: the node on the port (its
// epmd's), the verdict, and the note for a port not offered. Explain
// answers as the target judges, so the outbound cases are the planes'.
func TestJudgeSites(t *testing.T) {
	f := peerstest.File(t)
	for _, c := range peerstest.Cases {
		if c.Dir != peers.Inbound || c.Echo {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			var nodes []erldist.NameEntry
			if c.Erlang && c.Port != peers.EPMDPort {
				nodes = []erldist.NameEntry{{Name: "other", Port: 1}, {Name: c.Node, Port: c.Port}}
			}
			ex := &control.Explanation{Known: true}
			explain(f, f.Peer(c.From), f.Peer(c.To), c.Port, nodes, ex)
			allow := ex.Allow && !strings.Contains(ex.Note, "refused as not offered")
			notOffered := ex.Allow && !allow
			if allow != c.Allow || notOffered != c.NotOffered || !strings.HasPrefix(ex.Decision, c.Policy) {
				t.Errorf("explain: allow %v, note %q, decision %q; want %v, not offered %v, %q...", ex.Allow, ex.Note, ex.Decision, c.Allow, c.NotOffered, c.Policy)
			}
			if ex.Node != c.Node || ex.Erlang != c.Erlang {
				t.Errorf("explain: node %q erlang %v", ex.Node, ex.Erlang)
			}
		})
	}
}
