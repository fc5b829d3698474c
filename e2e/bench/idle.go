package main

import (
	"context"
	"fmt"
	"io"
	"slices"
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
	// MeshRounds is how many passes of pings the full mesh took to form
	// (1: every connection held at the first try).
	MeshRounds int `json:"mesh_rounds"`
}

// IdleReport is a -idle run.
type IdleReport struct {
	Started time.Time    `json:"started"`
	Machine Machine      `json:"machine"`
	Results []IdleResult `json:"results"`
}

// Idle measures the idle cost of overlayd in userspace and TUN mode.
func Idle(tb cluster.TB, peers int, window time.Duration, logf func(string, ...any)) (*IdleReport, error) {
	rep := &IdleReport{Started: time.Now(), Machine: machine()}
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
	// Connect every node to every other (Erlang's default full mesh does
	// once the first node knows them all). A node that lacks some of the
	// others pings them again: under load, OTP's global may drop a
	// connection that formed in the burst "to prevent overlapping
	// partitions", and nothing else brings it back.
	first := hosts[0].Node
	names := make([]string, len(hosts))
	for i, oh := range hosts {
		names[i] = "'" + oh.Node.Name + "'"
	}
	all := "[" + strings.Join(names, ",") + "]"
	rounds := 0
	err := cluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		rounds++
		for _, oh := range hosts {
			missing, err := oh.Node.Eval(ctx, fmt.Sprintf("[N || N <- %s -- [node() | nodes()], net_adm:ping(N) =/= pong]", all))
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
		return res, fmt.Errorf("full mesh of nodes: %w", err)
	}
	res.MeshRounds = rounds
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

// PrintIdle writes the idle table: per mode, the daemons' CPU share and
// wake-ups over the window, median and range.
func PrintIdle(w io.Writer, rep *IdleReport) {
	fmt.Fprintf(w, "\nIdle overlayd (%s): every node connected to every other, no traffic but distribution ticks\n\n", rep.Machine)
	fmt.Fprintf(w, "| mode | peers | window | CPU, %% of a core: median (range) | wake-ups/s: median (range) | nodedowns | mesh passes |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "| %s | %d | %.0f s | %s | %s | %d | %d |\n", r.Mode, r.Peers, r.Window, medRange(r.CPUPct, 3), medRange(r.Wakeups, 1), r.NodeDowns, r.MeshRounds)
	}
}

func medRange(v []float64, prec int) string {
	if len(v) == 0 {
		return "–"
	}
	s := slices.Clone(v)
	slices.Sort(s)
	f := "%." + fmt.Sprint(prec) + "f"
	return strings.Join([]string{fmt.Sprintf(f, s[len(s)/2]), " (", fmt.Sprintf(f, s[0]), "–", fmt.Sprintf(f, s[len(s)-1]), ")"}, "")
}
