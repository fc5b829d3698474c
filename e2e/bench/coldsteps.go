package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// The cold-connect breakdown (-cold-steps N): the chosen rows (and -before
// rows) set up as for the table, then N cold connects per row and round,
// rows interleaved (each round starting at the next row), idle and (with -busy) busy, each timed step by step
// inside Erlang (benchwork:cold_steps traces the setup process): when the
// EPMD lookup returned, the TCP connect, and the distribution handshake's
// replies. Where a row's figure for a step grows over the plain row's is
// where the overlay costs.

// coldStepNames name benchwork:cold_steps's steps, in its order.
var coldStepNames = []string{"epmd lookup", "tcp connect", "recv_status", "recv_challenge", "challenge_ack", "ping done", "then rtt1", "rtt2", "rtt3"}

// coldStepsTotal is the index of the whole ping in coldStepNames; the
// round trips after it are durations of their own.
const coldStepsTotal = 5

// ColdStepsReport is the breakdown's figures.
type ColdStepsReport struct {
	Started time.Time      `json:"started"`
	Machine Machine        `json:"machine"`
	Samples int            `json:"samples_per_round"`
	Rounds  int            `json:"rounds"`
	Rows    []ColdStepsRow `json:"rows"`
}

// ColdStepsRow is one row in one condition: per step, the median and the
// range over all samples of the time (ms since the ping began) at which the
// step was done; -1 for a step the row does not take.
type ColdStepsRow struct {
	ID        string    `json:"id"`
	Condition string    `json:"condition"`
	P50ms     []float64 `json:"p50_ms"`
	P10ms     []float64 `json:"p10_ms"`
	P90ms     []float64 `json:"p90_ms"`
	Steps     []string  `json:"steps"`
	N         int       `json:"n"`
	// Per cold connect (with its round trips and the disconnect after),
	// both daemons together (rows with overlayd): CPU time and context
	// switches, counts a busy shared machine distorts less than times.
	DaemonCPUus    float64 `json:"daemon_cpu_us_per_connect,omitempty"`
	DaemonSwitches float64 `json:"daemon_switches_per_connect,omitempty"`
}

// ColdSteps runs the breakdown.
func ColdSteps(tb cluster.TB, cfg Config, samples int) (*ColdStepsReport, error) {
	logf := cfg.Logf
	rep := &ColdStepsReport{Started: time.Now(), Machine: machine(), Samples: samples, Rounds: cfg.Rounds}
	env, err := newEnv(tb, "cold")
	if err != nil {
		return nil, err
	}
	rows, err := withBeforeRows(tb, cfg.Before, cfg.Rows)
	if err != nil {
		return nil, err
	}
	type run struct {
		id   string
		pair *Pair
	}
	var runs []run
	for _, row := range rows {
		if len(cfg.Rows) > 0 && !slices.Contains(cfg.Rows, row.ID) && !strings.HasPrefix(row.ID, BeforeRow) {
			continue
		}
		pair, err := row.Setup(env, row.ID)
		if err != nil {
			return nil, fmt.Errorf("row %s: setup: %w", row.ID, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		ok, err := pair.A.Ping(ctx, pair.B.Name)
		cancel()
		if err != nil || !ok {
			return nil, fmt.Errorf("row %s: %s cannot reach %s (pong %v, %v)", row.ID, pair.A.Name, pair.B.Name, ok, err)
		}
		runs = append(runs, run{row.ID, pair})
	}
	all := map[string][][]float64{} // "id/cond" -> samples of steps
	type work struct {
		cpu      time.Duration
		switches int64
	}
	daemons := map[string]work{} // "id/cond" -> the rows' daemons' work over all samples
	daemonWork := func(p *Pair) (w work) {
		for _, d := range p.Daemons {
			cpu, sw := procWork(d.Pid())
			w.cpu += cpu
			w.switches += sw
		}
		return w
	}
	var order []string
	measure := func(cond string, round int) error {
		// Each round starts at another row, so no row always follows
		// the same one (a row's teardown traffic, a load that drifts).
		for i := range runs {
			r := runs[(i+round)%len(runs)]
			key := r.id + "/" + cond
			if _, ok := all[key]; !ok {
				order = append(order, key)
			}
			w0 := daemonWork(r.pair)
			for range samples {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				out, _, err := coldRun(ctx, r.pair.A, r.pair.B, "cold_steps")
				cancel()
				if err != nil {
					return fmt.Errorf("row %s: %w", r.id, err)
				}
				v, err := parseColdSteps(out)
				if err != nil {
					return fmt.Errorf("row %s: %w", r.id, err)
				}
				all[key] = append(all[key], v)
			}
			w1 := daemonWork(r.pair)
			d := daemons[key]
			d.cpu += w1.cpu - w0.cpu
			d.switches += w1.switches - w0.switches
			daemons[key] = d
			s := all[key]
			logf("cold steps round %d %s, row %s: last total %.2f ms", round, cond, r.id, s[len(s)-1][coldStepsTotal])
		}
		return nil
	}
	for round := 1; round <= cfg.Rounds; round++ {
		if err := measure("idle", round); err != nil {
			return nil, err
		}
		if cfg.Busy {
			load, err := startBusy()
			if err != nil {
				return nil, err
			}
			err = measure("busy", round)
			load.stop()
			if err != nil {
				return nil, err
			}
		}
	}
	for _, key := range order {
		id, cond, _ := strings.Cut(key, "/")
		r := ColdStepsRow{ID: id, Condition: cond, Steps: coldStepNames, N: len(all[key])}
		if d := daemons[key]; r.N > 0 && d.switches > 0 {
			r.DaemonCPUus = float64(d.cpu.Microseconds()) / float64(r.N)
			r.DaemonSwitches = float64(d.switches) / float64(r.N)
		}
		for i := range coldStepNames {
			var v []time.Duration
			for _, s := range all[key] {
				if s[i] >= 0 {
					v = append(v, time.Duration(s[i]*1e6))
				}
			}
			if len(v) == 0 {
				r.P50ms, r.P10ms, r.P90ms = append(r.P50ms, -1), append(r.P10ms, -1), append(r.P90ms, -1)
				continue
			}
			slices.Sort(v)
			r.P50ms = append(r.P50ms, millis(percentile(v, 50)))
			r.P10ms = append(r.P10ms, millis(percentile(v, 10)))
			r.P90ms = append(r.P90ms, millis(percentile(v, 90)))
		}
		rep.Rows = append(rep.Rows, r)
	}
	return rep, nil
}

// parseColdSteps turns benchwork:cold_steps's [Total, Step...] (ns) into
// ms in coldStepNames's order, -1 kept.
func parseColdSteps(out string) ([]float64, error) {
	f := strings.Split(strings.Trim(out, "[]"), ",")
	if len(f) != len(coldStepNames) {
		return nil, fmt.Errorf("benchwork:cold_steps: unexpected result %s", out)
	}
	v := make([]float64, len(f))
	for i, s := range f {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("benchwork:cold_steps: unexpected result %s", out)
		}
		ms := float64(n) / 1e6
		if n < 0 {
			ms = -1
		}
		switch {
		case i == 0:
			v[coldStepsTotal] = ms
		case i <= coldStepsTotal:
			v[i-1] = ms
		default:
			v[i] = ms
		}
	}
	return v, nil
}

// PrintColdSteps prints, per row and condition, the median time (ms since
// the ping began) at which each step was done, [p10–p90].
func PrintColdSteps(w io.Writer, rep *ColdStepsReport) {
	fmt.Fprintf(w, "cold connect, step by step: %s; %d rounds of %d samples; ms since net_adm:ping began, p50 [p10–p90]\n\n",
		rep.Machine, rep.Rounds, rep.Samples)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "row\tcondition\t%s\tdaemons: CPU µs, switches per connect\n", strings.Join(coldStepNames, "\t"))
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%s", r.ID, r.Condition)
		for i := range r.P50ms {
			if r.P50ms[i] < 0 {
				fmt.Fprint(tw, "\t—")
				continue
			}
			fmt.Fprintf(tw, "\t%.2f [%.2f–%.2f]", r.P50ms[i], r.P10ms[i], r.P90ms[i])
		}
		if r.DaemonSwitches > 0 {
			fmt.Fprintf(tw, "\t%.0f, %.0f", r.DaemonCPUus, r.DaemonSwitches)
		} else {
			fmt.Fprint(tw, "\t—")
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
