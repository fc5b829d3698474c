package overlay

import (
	"context"
	"net/netip"
	"time"

	"github.com/nodewire/nodewire/netstack"
	"github.com/nodewire/nodewire/netstack/erldist"
)

// opsPlane is what the userspace stack tells operators beyond dataPlane:
// the policy's decisions and EPMD requests, the last refusals, the Erlang
// nodes it resolves, its packet counts; and it can ping from inside the
// overlay. The TUN plane's filter does not keep these; metrics, status and
// explain leave them out there, and the system's ping works there.
type opsPlane interface {
	PolicyCounters() ([]netstack.DecisionCount, []netstack.EPMDCount)
	LastRefusals() map[string]netstack.Refusal
	ErlangPorts(ctx context.Context, peer string) ([]erldist.NameEntry, error)
	RemoteErlangPorts() map[string][]erldist.NameEntry
	Packets() netstack.PacketCounts
	Ping(ctx context.Context, dst netip.Addr, seq uint16, size int) (time.Duration, error)
}

// The userspace plane must offer it: a method missing here would silently
// empty status, metrics and explain, or make ping refuse.
var _ opsPlane = userspacePlane{}

// ops returns the data plane's operator view, or nil when it has none.
func (d *Daemon) ops() opsPlane {
	o, _ := d.plane.(opsPlane)
	return o
}
