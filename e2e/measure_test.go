package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// TestOverlayVsPlainDistribution measures Erlang over the overlay next to
// plain distribution over the same kind of veth link, in one run. It
// asserts only that both paths work and deliver; the figures are logged for
// the record (speed is judged in benchmarks, not in tests).
func TestOverlayVsPlainDistribution(t *testing.T) {
	cluster.Require(t)
	c := cluster.New(t, "ms")
	o := cluster.NewOverlay(c, t, "10.77.0.0/16")
	_, err := o.Run("add-network", "--file", o.File, "--name", "payments", "--prefix", "10.77.1.0/24")
	must(t, err)
	a, err := o.AddPeer("a", "pay-1", "payments")
	must(t, err)
	b, err := o.AddPeer("b", "pay-2", "payments")
	must(t, err)
	for _, h := range []*cluster.OverlayHost{a, b} {
		must(t, o.StartDaemon(h))
		must(t, o.StartErlang(h))
	}

	// Plain distribution: two more hosts, epmd and nodes on the underlay.
	var plain []*cluster.Node
	for _, name := range []string{"pa", "pb"} {
		h := c.AddHost(name)
		_, err := h.StartEPMD(nil)
		must(t, err)
		n, err := h.StartNode(cluster.NodeOptions{Name: "app@" + h.Addr.String()})
		must(t, err)
		plain = append(plain, n)
	}

	const mib = 256
	const rtts = 500
	type row struct {
		name string
		mbps float64
		rtt  time.Duration
	}
	var rows []row
	for _, p := range []struct {
		name     string
		from, to *cluster.Node
	}{
		{"plain distribution over veth", plain[0], plain[1]},
		{"nodewire userspace overlay", a.Node, b.Node},
	} {
		if ok, err := p.from.Ping(ctxFor(t, 30*time.Second), p.to.Name); err != nil || !ok {
			t.Fatalf("%s: ping %v %v", p.name, ok, err)
		}
		mbps, err := cluster.MeasureThroughput(ctxFor(t, 5*time.Minute), p.from, p.to, mib)
		must(t, err)
		rtt, err := cluster.MeasureRTT(ctxFor(t, 2*time.Minute), p.from, p.to, rtts)
		must(t, err)
		rows = append(rows, row{p.name, mbps, rtt})
	}
	msg := fmt.Sprintf("%-30s %12s %14s\n", "path", "MB/s", "erpc RTT p50")
	for _, r := range rows {
		msg += fmt.Sprintf("%-30s %12.0f %14v  (%.2fx plain throughput, %.2fx plain RTT)\n", r.name, r.mbps, r.rtt,
			r.mbps/rows[0].mbps, float64(r.rtt)/float64(rows[0].rtt))
	}
	t.Logf("same run, %d MiB in 1 MiB messages (8 in flight), %d erpc:call round trips:\n%s", mib, rtts, msg)
}
