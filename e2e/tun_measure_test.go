package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// TestTUNVsUserspace measures Erlang over TUN mode next to userspace mode
// and plain distribution over the same kind of veth link, in one run. It
// asserts only that every path works and delivers; the figures are logged
// for the record (speed is judged by make bench, not in tests).
func TestTUNVsUserspace(t *testing.T) {
	cluster.Require(t)
	c := cluster.New(t, "mt")
	o := cluster.NewOverlay(c, t, "10.77.0.0/16")
	_, err := o.Run("add-network", "--file", o.File, "--name", "payments", "--prefix", "10.77.1.0/24")
	must(t, err)
	var hosts []*cluster.OverlayHost
	for i, mode := range []string{"userspace", "userspace", "tun", "tun"} {
		h, err := o.AddPeer(fmt.Sprintf("h%d", i), fmt.Sprintf("pay-%d", i+1), "payments", "--mode", mode)
		must(t, err)
		hosts = append(hosts, h)
	}
	o.DaemonArgs = func(h *cluster.OverlayHost) []string {
		if h == hosts[2] || h == hosts[3] {
			return []string{"--mode", "tun"}
		}
		return nil
	}
	for _, h := range hosts {
		must(t, o.StartDaemon(h))
		must(t, o.StartErlang(h))
	}
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
		{"nodewire userspace", hosts[0].Node, hosts[1].Node},
		{"nodewire TUN", hosts[2].Node, hosts[3].Node},
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
		msg += fmt.Sprintf("%-30s %12.0f %14v  (%.2fx plain throughput, %.2fx userspace throughput, %.2fx plain RTT)\n", r.name, r.mbps, r.rtt,
			r.mbps/rows[0].mbps, r.mbps/rows[1].mbps, float64(r.rtt)/float64(rows[0].rtt))
	}
	t.Logf("same run, %d MiB in 1 MiB messages (8 in flight), %d erpc:call round trips:\n%s", mib, rtts, msg)
}
