package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
	"github.com/nodewire/nodewire/netstack/hoptrace"
)

// The latency budget (-budget): nodewire's two rows with an overlayd built
// with -tags hoptrace, which timestamps every packet at each hop of its
// data path (package netstack/hoptrace). A ping-pong of 64-byte messages
// runs; every message is followed from the sending daemon's first hop to
// the receiving daemon's last, and the table gives the median time between
// consecutive hops, per direction, idle and (with -busy) with every CPU
// busy. Both daemons share the machine's clock, so hops in different
// processes compare directly.

// BudgetReport is the latency budget's figures.
type BudgetReport struct {
	Started time.Time     `json:"started"`
	Machine Machine       `json:"machine"`
	Pings   int           `json:"pings"`
	Modes   []BudgetTable `json:"modes"`
}

// BudgetTable is one mode in one condition.
type BudgetTable struct {
	Mode      string  `json:"mode"`
	Condition string  `json:"condition"`
	RTTp50us  float64 `json:"rtt_p50_us"`
	// Legs are the hops' median µs, per direction ("A->B", "B->A").
	Legs []BudgetLeg `json:"legs"`
	// Samples is how many messages were followed through every hop, per
	// direction.
	Samples map[string]int `json:"samples"`
	// Both daemons' work per round trip, whatever the load: CPU time,
	// context switches (goroutine hand-offs that parked a thread) and
	// WireGuard packets sent (messages and pure ACKs).
	CPUusPerRT    float64 `json:"cpu_us_per_rt"`
	SwitchesPerRT float64 `json:"switches_per_rt"`
	PacketsPerRT  float64 `json:"packets_per_rt"`
}

// procWork is a process's CPU time and context switches so far, summed
// over its threads (/proc/PID/task/*/schedstat and status).
func procWork(pid int) (cpu time.Duration, switches int64) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, t := range tasks {
		if b, err := os.ReadFile(t + "/schedstat"); err == nil {
			var ns int64
			if _, err := fmt.Sscan(string(b), &ns); err == nil {
				cpu += time.Duration(ns)
			}
		}
		b, err := os.ReadFile(t + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				var n int64
				if _, err := fmt.Sscan(strings.TrimSpace(v), &n); err == nil {
					switches += n
				}
			}
		}
	}
	return cpu, switches
}

// BudgetLeg is the time from one hop to the next.
type BudgetLeg struct {
	From, To string
	Side     string             // sender, wire or receiver
	P50us    map[string]float64 `json:"p50_us"` // by direction
}

// Packets smaller than these are pure ACKs and dist ticks, not the 64-byte
// message: the message's inner IP packet is at least 104 bytes (64 of
// payload, 40 of headers), its WireGuard datagram 32 more.
const (
	msgMinStream = 64
	msgMinIP     = 100
	msgMinUDP    = 128
)

type hopMark struct {
	hop hoptrace.Hop
	at  int64
	n   int
}

// minLen is the smallest mark of hop h that can be the message.
func minLen(h hoptrace.Hop) int {
	switch h {
	case hoptrace.FaceRead, hoptrace.StackRead, hoptrace.FaceWrite:
		return msgMinStream
	case hoptrace.UDPSend, hoptrace.UDPRecv:
		return msgMinUDP
	}
	return msgMinIP
}

// Budget runs the latency budget: pings round trips of 64 bytes per mode
// and condition.
func Budget(tb cluster.TB, pings int, busy bool, logf func(string, ...any)) (*BudgetReport, error) {
	rep := &BudgetReport{Started: time.Now(), Machine: machine(), Pings: pings}
	env, err := newEnv(tb, "budget")
	if err != nil {
		return nil, err
	}
	c := env.C
	bin := filepath.Join(c.Dir(), "overlayd-hoptrace")
	_, file, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-tags", "hoptrace", "-o", bin, "github.com/nodewire/nodewire/cmd/overlayd")
	build.Dir = filepath.Dir(file)
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build -tags hoptrace: %v: %s", err, strings.TrimSpace(string(out)))
	}
	for _, mode := range []string{"userspace", "tun"} {
		arg, id := "", "budgu"
		if mode == "tun" {
			arg, id = "tun", "budgt"
		}
		pair, err := setupOverlay(env, id, arg, bin)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mode, err)
		}
		for _, d := range pair.Daemons {
			path := hoptrace.Path(d.Pid())
			tb.Cleanup(func() { _ = os.Remove(path) })
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err = pingpong(ctx, pair.A, pair.B, 64, 200) // connect and warm up
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: warm-up: %w", mode, err)
		}
		conds := []string{"idle"}
		if busy {
			conds = append(conds, "busy")
		}
		for _, cond := range conds {
			t, err := budgetOnce(pair, mode, cond, pings)
			if err != nil {
				return nil, fmt.Errorf("%s, %s: %w", mode, cond, err)
			}
			logf("budget %s %s: rtt p50 %.0f µs, %v messages followed", mode, cond, t.RTTp50us, t.Samples)
			rep.Modes = append(rep.Modes, *t)
		}
	}
	return rep, nil
}

func budgetOnce(pair *Pair, mode, cond string, pings int) (*BudgetTable, error) {
	da, db := pair.Daemons[pair.A.Host.Name], pair.Daemons[pair.B.Host.Name]
	if da == nil || db == nil {
		return nil, fmt.Errorf("no daemons for %s and %s", pair.A.Host.Name, pair.B.Host.Name)
	}
	if cond == "busy" {
		load, err := startBusy()
		if err != nil {
			return nil, err
		}
		defer load.stop()
	}
	cpuA0, swA0 := procWork(da.Pid())
	cpuB0, swB0 := procWork(db.Pid())
	start := time.Now().UnixNano()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	ds, err := pingpong(ctx, pair.A, pair.B, 64, pings)
	cancel()
	if err != nil {
		return nil, err
	}
	end := time.Now().UnixNano()
	cpuA1, swA1 := procWork(da.Pid())
	cpuB1, swB1 := procWork(db.Pid())
	slices.Sort(ds)
	marks := map[string][]hopMark{}
	for name, d := range map[string]*cluster.Process{"A": da, "B": db} {
		m, err := readMarks(hoptrace.Path(d.Pid()), start, end)
		if err != nil {
			return nil, err
		}
		marks[name] = m
	}
	path := []hoptrace.Hop{hoptrace.FaceRead, hoptrace.TUNRead, hoptrace.UDPSend, hoptrace.UDPRecv, hoptrace.TUNWrite, hoptrace.StackRead, hoptrace.FaceWrite}
	if mode == "tun" {
		path = path[1:5]
	}
	t := &BudgetTable{Mode: mode, Condition: cond, RTTp50us: micros(percentile(ds, 50)), Samples: map[string]int{}}
	t.CPUusPerRT = micros(cpuA1-cpuA0+cpuB1-cpuB0) / float64(pings)
	t.SwitchesPerRT = float64(swA1-swA0+swB1-swB0) / float64(pings)
	for _, m := range append(marks["A"], marks["B"]...) {
		if m.hop == hoptrace.UDPSend {
			t.PacketsPerRT++
		}
	}
	t.PacketsPerRT /= float64(pings)
	for i := 0; i+1 < len(path); i++ {
		side := "sender"
		switch {
		case path[i] == hoptrace.UDPSend:
			side = "wire"
		case path[i] >= hoptrace.UDPRecv:
			side = "receiver"
		}
		t.Legs = append(t.Legs, BudgetLeg{From: path[i].String(), To: path[i+1].String(), Side: side, P50us: map[string]float64{}})
	}
	for _, dir := range [][2]string{{"A", "B"}, {"B", "A"}} {
		key := dir[0] + "->" + dir[1]
		legs := follow(marks[dir[0]], marks[dir[1]], path)
		t.Samples[key] = len(legs)
		if len(legs) == 0 {
			return nil, fmt.Errorf("%s: no message followed through every hop", key)
		}
		for i := range t.Legs {
			var v []time.Duration
			for _, l := range legs {
				v = append(v, l[i])
			}
			slices.Sort(v)
			t.Legs[i].P50us[key] = micros(percentile(v, 50))
		}
	}
	return t, nil
}

// follow finds each message the sender's first hop saw and times it
// through the path: every next hop is the first mark of that hop, large
// enough to be the message, at or after the previous one and before the
// sender's next message (in a ping-pong a message is through before the
// next one starts). The sending daemon has the hops up to UDPSend, the
// receiving one the rest. A message missing a hop is dropped, and cannot
// take the next message's marks.
func follow(sender, receiver []hopMark, path []hoptrace.Hop) [][]time.Duration {
	var anchors []int64
	for _, m := range sender {
		if m.hop == path[0] && m.n >= minLen(m.hop) {
			anchors = append(anchors, m.at)
		}
	}
	var out [][]time.Duration
	idx := map[hoptrace.Hop]int{} // search position per hop
	next := func(h hoptrace.Hop, after, before int64) (int64, bool) {
		marks := sender
		if h >= hoptrace.UDPRecv {
			marks = receiver
		}
		for i := idx[h]; i < len(marks); i++ {
			m := marks[i]
			if m.hop != h || m.n < minLen(h) {
				continue
			}
			if m.at >= before {
				return 0, false // the next message's: leave it
			}
			idx[h] = i + 1 // used, or older than this message
			if m.at >= after {
				return m.at, true
			}
		}
		return 0, false
	}
	for k, t0 := range anchors {
		before := int64(math.MaxInt64)
		if k+1 < len(anchors) {
			before = anchors[k+1]
		}
		legs := make([]time.Duration, 0, len(path)-1)
		prev := t0
		for _, h := range path[1:] {
			t, ok := next(h, prev, before)
			if !ok {
				legs = nil
				break
			}
			legs = append(legs, time.Duration(t-prev))
			prev = t
		}
		if legs != nil {
			out = append(out, legs)
		}
	}
	return out
}

// readMarks reads the marks made in [from, to] from a hoptrace file,
// polling until a heartbeat after to says the file has them all.
func readMarks(path string, from, to int64) ([]hopMark, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		marks, complete, err := parseMarks(path, from, to)
		if err != nil || complete {
			return marks, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: no heartbeat after the workload within 10s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func parseMarks(path string, from, to int64) (marks []hopMark, complete bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, fmt.Errorf("hoptrace marks: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m hopMark
		if _, err := fmt.Sscan(sc.Text(), &m.hop, &m.at, &m.n); err != nil {
			continue // a line being written
		}
		if m.hop == 0 {
			complete = complete || m.at > to
			continue
		}
		if m.at >= from && m.at <= to {
			marks = append(marks, m)
		}
	}
	return marks, complete, sc.Err()
}

// PrintBudget writes the budget: per mode, the hops' median µs per
// direction and condition, and their share of the round trip.
func PrintBudget(w io.Writer, rep *BudgetReport) {
	fmt.Fprintf(w, "latency budget %s: %d CPUs, kernel %s, load %s; %d round trips of 64 B per mode and condition; median µs per hop (share of the round trip's p50)\n",
		rep.Started.Format("2006-01-02 15:04:05"), rep.Machine.CPUs, rep.Machine.Kernel, rep.Machine.Load, rep.Pings)
	byMode := map[string][]BudgetTable{}
	var modes []string
	for _, t := range rep.Modes {
		if _, ok := byMode[t.Mode]; !ok {
			modes = append(modes, t.Mode)
		}
		byMode[t.Mode] = append(byMode[t.Mode], t)
	}
	for _, mode := range modes {
		ts := byMode[mode]
		fmt.Fprintf(w, "\nnodewire %s\n", mode)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
		head := "side\thop"
		for _, t := range ts {
			head += "\t" + t.Condition + " A->B\t" + t.Condition + " B->A"
		}
		fmt.Fprintln(tw, head+"\t")
		sums := make([]float64, len(ts))
		for i, l := range ts[0].Legs {
			line := l.Side + "\t" + l.From + " -> " + l.To
			for j, t := range ts {
				ab, ba := t.Legs[i].P50us["A->B"], t.Legs[i].P50us["B->A"]
				sums[j] += ab + ba
				line += fmt.Sprintf("\t%.1f (%.0f%%)\t%.1f (%.0f%%)", ab, 100*ab/t.RTTp50us, ba, 100*ba/t.RTTp50us)
			}
			fmt.Fprintln(tw, line+"\t")
		}
		line := "\tin overlayd, both ways"
		for j, t := range ts {
			line += fmt.Sprintf("\t%.0f (%.0f%%)\t", sums[j], 100*sums[j]/t.RTTp50us)
		}
		fmt.Fprintln(tw, line+"\t")
		line = "\toutside (kernel, nodes)"
		for j, t := range ts {
			out := t.RTTp50us - sums[j]
			line += fmt.Sprintf("\t%.0f (%.0f%%)\t", out, 100*out/t.RTTp50us)
		}
		fmt.Fprintln(tw, line+"\t")
		line = "\tround trip p50"
		for _, t := range ts {
			line += fmt.Sprintf("\t%.0f\t", t.RTTp50us)
		}
		fmt.Fprintln(tw, line+"\t")
		line = "\tper round trip, both daemons: CPU µs / context switches / WireGuard packets"
		for _, t := range ts {
			line += fmt.Sprintf("\t%.0f / %.1f / %.1f\t", t.CPUusPerRT, t.SwitchesPerRT, t.PacketsPerRT)
		}
		fmt.Fprintln(tw, line+"\t")
		tw.Flush()
	}
}
