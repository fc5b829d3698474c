package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// The idle cost of a daemon: an overlay of Peers+1 hosts whose Erlang nodes
// are all connected (so every WireGuard session is up and distribution's
// ticks flow, as in a quiet production cluster) and otherwise silent. What
// a daemon spends then is what it costs a host that has nothing to carry:
// timers, polls and keepalives. Issue 12's target: at most 1% of a core.

// IdleResult is one mode's figures over the measured window.
type IdleResult struct {
	Mode   string  `json:"mode"`
	Peers  int     `json:"peers"`
	Window float64 `json:"window_s"`
	// CPUPct is each daemon's CPU time over the window in percent of one
	// core; Wakeups its context switches per second (every thread).
	CPUPct  []float64 `json:"cpu_pct"`
	Wakeups []float64 `json:"wakeups_per_s"`
	// NodeDowns is how many nodedowns the connected node saw in the
	// window: a quiet cluster must not lose its connections.
	NodeDowns int `json:"nodedowns"`
	// MeshMs is how long the full mesh took to form (formMesh; 0: not
	// within 20 s), and MeshRounds how many passes of pings it took
	// (1: every connection held at the first try).
	MeshMs     float64 `json:"mesh_ms"`
	MeshRounds int     `json:"mesh_rounds"`
}

// IdleReport is a -idle run.
type IdleReport struct {
	Started time.Time `json:"started"`
	Machine Machine   `json:"machine"`
	// PlainMeshMs is formMesh with plain distribution, same host count.
	PlainMeshMs float64      `json:"plain_mesh_ms"`
	Results     []IdleResult `json:"results"`
}

// Idle measures the idle cost of overlayd in userspace and TUN mode.
func Idle(tb cluster.TB, peers int, window time.Duration, logf func(string, ...any)) (*IdleReport, error) {
	rep := &IdleReport{Started: time.Now(), Machine: machine()}
	mesh, err := measurePlainMesh(tb, peers+1)
	if err != nil {
		return nil, fmt.Errorf("plain distribution: %w", err)
	}
	rep.PlainMeshMs = millis(mesh)
	for i, mode := range []string{"userspace", "tun"} {
		logf("idle: %s mode, %d quiet peers, %s", mode, peers, window)
		res, err := measureIdle(tb, mode, fmt.Sprintf("10.%d.0.0/16", 84+i), peers, window)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mode, err)
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

func measureIdle(tb cluster.TB, mode, prefix string, peers int, window time.Duration) (IdleResult, error) {
	res := IdleResult{Mode: mode, Peers: peers, Window: window.Seconds()}
	c := cluster.New(tb, "idle"+mode[:1])
	o := cluster.NewOverlay(c, tb, prefix)
	var args []string
	if mode == "tun" {
		args = []string{"--mode", "tun"}
	}
	if _, err := o.Run("add-network", "--file", o.File, "--name", "lab"); err != nil {
		return res, err
	}
	var hosts []*cluster.OverlayHost
	for i := range peers + 1 {
		oh, err := o.AddPeer(fmt.Sprintf("q%d", i), fmt.Sprintf("q-%d", i), "lab", args...)
		if err != nil {
			return res, err
		}
		hosts = append(hosts, oh)
	}
	for _, oh := range hosts {
		if err := o.StartDaemon(oh); err != nil {
			return res, err
		}
		if err := o.StartErlang(oh); err != nil {
			return res, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), window+3*time.Minute)
	defer cancel()
	nodes := make([]*cluster.Node, len(hosts))
	for i, oh := range hosts {
		nodes[i] = oh.Node
	}
	first := nodes[0]
	mesh, passes, err := formMesh(ctx, nodes)
	if err != nil {
		return res, err
	}
	res.MeshMs, res.MeshRounds = millis(mesh), passes
	downs0, err := first.NodeDowns(ctx)
	if err != nil {
		return res, err
	}
	type work struct {
		cpu time.Duration
		sw  int64
	}
	start := make([]work, len(hosts))
	for i, oh := range hosts {
		start[i].cpu, start[i].sw = procWork(oh.Daemon.Pid())
	}
	t0 := time.Now()
	select {
	case <-time.After(window): // the measurement itself: a quiet window
	case <-ctx.Done():
		return res, ctx.Err()
	}
	wall := time.Since(t0)
	for i, oh := range hosts {
		if oh.Daemon.Exited() {
			return res, fmt.Errorf("overlayd on %s exited:\n%s", oh.Name, oh.Daemon.Tail(20))
		}
		cpu, sw := procWork(oh.Daemon.Pid())
		res.CPUPct = append(res.CPUPct, 100*float64(cpu-start[i].cpu)/float64(wall))
		res.Wakeups = append(res.Wakeups, float64(sw-start[i].sw)/wall.Seconds())
	}
	downs1, err := first.NodeDowns(ctx)
	if err != nil {
		return res, err
	}
	res.NodeDowns = downs1 - downs0
	for _, oh := range hosts {
		for _, p := range []interface{ Stop() error }{oh.Node, oh.EPMD, oh.Daemon} {
			if err := p.Stop(); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// formMesh connects nodes into a full mesh as a cluster forms one: the
// first node pings each other node in turn, and OTP's global connects the
// rest, every pair at about the same moment. mesh is the time from the
// first ping until every node is connected to every other (zero if that
// did not happen within meshWait). Then any node that lacks some of the
// others pings them, until none does: under load, global may drop a
// connection that formed in the burst "to prevent overlapping partitions",
// and nothing else brings it back. passes counts those rounds (1: none
// was needed).
func formMesh(ctx context.Context, nodes []*cluster.Node) (mesh time.Duration, passes int, err error) {
	const meshWait = 20 * time.Second
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = "'" + n.Name + "'"
	}
	all := "[" + strings.Join(names, ",") + "]"
	want := fmt.Sprint(len(nodes) - 1)
	t0 := time.Now()
	for _, n := range nodes[1:] {
		if ok, err := nodes[0].Ping(ctx, n.Name); err != nil || !ok {
			return 0, 0, fmt.Errorf("%s cannot reach %s: %v", nodes[0].Name, n.Name, err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, meshWait)
	defer cancel()
	err = cluster.Poll(wctx, 10*time.Millisecond, func() (bool, error) {
		for _, n := range nodes {
			if got, err := n.Eval(wctx, "length(nodes())"); err != nil || got != want {
				return false, nil
			}
		}
		return true, nil
	})
	if err == nil {
		mesh = time.Since(t0)
	}
	err = cluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		passes++
		for _, n := range nodes {
			missing, err := n.Eval(ctx, fmt.Sprintf("[N || N <- %s -- [node() | nodes()], net_adm:ping(N) =/= pong]", all))
			if err != nil {
				return false, err
			}
			if missing != "[]" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return mesh, passes, fmt.Errorf("full mesh of nodes: %w", err)
	}
	return mesh, passes, nil
}

// measurePlainMesh is formMesh's baseline: the same number of hosts with
// plain distribution over the veth.
func measurePlainMesh(tb cluster.TB, hosts int) (time.Duration, error) {
	c := cluster.New(tb, "meshp")
	var nodes []*cluster.Node
	for i := range hosts {
		h := c.AddHost(fmt.Sprintf("p%d", i))
		if _, err := h.StartEPMD(nil); err != nil {
			return 0, err
		}
		n, err := h.StartNode(cluster.NodeOptions{Name: "app@" + h.Addr.String()})
		if err != nil {
			return 0, err
		}
		nodes = append(nodes, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mesh, _, err := formMesh(ctx, nodes)
	for _, n := range nodes {
		n.Stop()
	}
	return mesh, err
}

// PrintIdle writes the idle table: per mode, the daemons' CPU share and
// wake-ups over the window, median and range.
func PrintIdle(w io.Writer, rep *IdleReport) {
	fmt.Fprintf(w, "\nIdle overlayd (%s): every node connected to every other, no traffic but distribution ticks\n\n", rep.Machine)
	fmt.Fprintf(w, "| mode | peers | window | CPU, %% of a core: median (range) | wake-ups/s: median (range) | nodedowns | full mesh formed in | mesh passes |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "| %s | %d | %.0f s | %s | %s | %d | %.0f ms | %d |\n", r.Mode, r.Peers, r.Window, medRange(r.CPUPct, 3), medRange(r.Wakeups, 1), r.NodeDowns, r.MeshMs, r.MeshRounds)
	}
	fmt.Fprintf(w, "\nplain distribution, same %d hosts: full mesh formed in %.0f ms (0: not within 20 s)\n", len(rep.Results[0].CPUPct), rep.PlainMeshMs)
}

func medRange(v []float64, prec int) string {
	if len(v) == 0 {
		return "–"
	}
	st := summarize(v)
	return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, st.Median, prec, st.Min, prec, st.Max)
}
