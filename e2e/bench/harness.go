package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// Config is one run of the harness.
type Config struct {
	Sizes  Sizes
	Rounds int
	Rows   []string // row IDs to run; empty: all (the baseline is always run)
	// ScalePeers lists peer-file sizes for which a real overlayd is started
	// alone and its start time and resident memory reported.
	ScalePeers []int
	// ScaleReach, if below a ScalePeers size, measures that size again
	// with only this many peers reachable by the policy (lazy peers).
	ScaleReach int
	// LoadedScalePeers lists peer-file sizes for which the userspace row is
	// set up again with that many peers and its daemons' memory sampled
	// under the bulk workloads.
	LoadedScalePeers []int
	// ProfileDir, if set, gets CPU and heap profiles of the sending and the
	// receiving overlayd under the bulk workload, and their top entries.
	ProfileDir string
	// ProfileRow is the nodewire row profiled: nwuser (the default) or
	// nwtun.
	ProfileRow string
	// Before lists git revisions of this repository: for each, a row
	// "before<i>" runs nodewire userspace with overlayd built at that
	// revision, and "before<i>tun" TUN mode when the nwtun row runs, so
	// that a change's before and after share a run.
	Before []string
	// StdBind adds rows stduser and stdtun: nodewire with overlayd on
	// wireguard-go's StdNetBind instead of udpbind (stdbind.go).
	StdBind bool
	// Busy also runs every round of every row with each CPU kept busy by
	// an idle-priority loop (see [busyLoad]), reported as Report.Busy.
	Busy bool
	Logf func(format string, args ...any)
}

// Report is everything a run measured; it is also the JSON written under
// e2e/bench/results/.
type Report struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Machine  Machine   `json:"machine"`
	Sizes    Sizes     `json:"sizes"`
	Rounds   int       `json:"rounds"`
	// Baselines are the baseline rows' IDs: each ratio is to the better of
	// them for its metric and condition (Stat.Against says which).
	Baselines []string    `json:"baselines"`
	Rows      []RowResult `json:"rows"`
	// Busy is the same rows measured with every CPU kept busy by
	// idle-priority loops (Config.Busy), ratios against the busy baseline.
	Busy  []RowResult   `json:"busy_rows,omitempty"`
	Scale []ScaleResult `json:"scale,omitempty"`
	// LoadedScale: nodewire's daemons with big peer files, under bulk.
	LoadedScale []LoadedScaleResult `json:"loaded_scale,omitempty"`
	Profiles    []Profile           `json:"profiles,omitempty"`
}

// Machine says where the figures come from.
type Machine struct {
	CPUs   int    `json:"cpus"`
	Kernel string `json:"kernel"`
	OTP    string `json:"otp"`
	Go     string `json:"go"`
	Load   string `json:"loadavg_at_start"`
	// SSL is OTP's ssl application: its version and the TLS versions it
	// offers by default (what a row without a versions option gets).
	SSL string `json:"ssl"`
}

// String is the machine as the tables' first lines name it.
func (m Machine) String() string {
	return fmt.Sprintf("%d CPUs, kernel %s, OTP %s (%s), %s, load %s", m.CPUs, m.Kernel, m.OTP, m.SSL, m.Go, m.Load)
}

// RowResult is one row's figures.
type RowResult struct {
	ID      string          `json:"id"`
	Name    string          `json:"name"`
	Metrics map[string]Stat `json:"metrics"`
	// TLS is what a baseline row's connection negotiated: protocol and
	// cipher suite, asked of the connection after setup.
	TLS string `json:"tls_negotiated,omitempty"`
	// Daemons is the resident memory of the row's daemons over the run.
	Daemons []DaemonMem `json:"daemons,omitempty"`
	// BulkCPU is each process's CPU use during the single-sender bulk
	// workload, in percent of one core: a process near 100% (or the sum
	// near the machine's CPUs) is what limits the row.
	BulkCPU map[string]Stat `json:"bulk_cpu_percent,omitempty"`
	raw     map[string][]float64
}

// DaemonMem is one daemon's memory: the largest VmRSS sampled while the
// workloads ran and the kernel's high-water mark (VmHWM) at the end.
type DaemonMem struct {
	Host      string `json:"host"`
	PeakRSSKB int64  `json:"peak_vmrss_kib"`
	HWMKB     int64  `json:"vmhwm_kib"`
	EndRSSKB  int64  `json:"end_vmrss_kib"`
}

type rowRun struct {
	row  Row
	pair *Pair
	res  *RowResult
	mem  map[string]*rssSampler
	cpu  map[string][]float64 // CPU % of each process during bulk, per round
	// busy, busyCPU: the same with every CPU busy (Config.Busy).
	busy    *RowResult
	busyCPU map[string][]float64
	// pidA, pidB are the nodes' emulator processes.
	pidA, pidB int
}

// Run sets up every row on a fresh cluster, runs the workloads Rounds
// times (rows interleaved within a round, so slow drifts of the machine hit
// every row alike), then the scale and profile phases.
func Run(tb cluster.TB, cfg Config) (*Report, error) {
	if cfg.Rounds < 1 {
		return nil, fmt.Errorf("rounds %d: want at least 1", cfg.Rounds)
	}
	logf := cfg.Logf
	if logf == nil {
		logf = tb.Logf
	}
	rep := &Report{Started: time.Now(), Machine: machine(), Sizes: cfg.Sizes, Rounds: cfg.Rounds}
	env, err := newEnv(tb, "bench")
	if err != nil {
		return nil, err
	}

	rows, err := withBeforeRows(tb, cfg.Before, cfg.Rows)
	if err != nil {
		return nil, err
	}
	if cfg.StdBind {
		rows = append(rows, stdBindRows()...)
	}
	var runs []*rowRun
	for _, row := range rows {
		if len(cfg.Rows) > 0 && !slices.Contains(cfg.Rows, row.ID) && !row.Baseline && !strings.HasPrefix(row.ID, BeforeRow) && !strings.HasPrefix(row.ID, StdBindRow) {
			continue
		}
		t0 := time.Now()
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
		logf("row %s up in %v", row.ID, time.Since(t0).Round(time.Millisecond))
		// The emulator's own PID, for the CPU meter (erl execs it, but
		// ask rather than assume).
		var osPIDs [2]int
		for i, n := range []*cluster.Node{pair.A, pair.B} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, err := n.Eval(ctx, "list_to_integer(os:getpid()).")
			cancel()
			if err == nil {
				osPIDs[i], err = strconv.Atoi(out)
			}
			if err != nil {
				return nil, fmt.Errorf("row %s: os:getpid() on %s: %v", row.ID, n.Name, err)
			}
		}
		var negotiated string
		if row.Baseline {
			if negotiated, err = tlsNegotiated(pair); err != nil {
				return nil, fmt.Errorf("row %s: %w", row.ID, err)
			}
			logf("row %s negotiated %s", row.ID, negotiated)
			rep.Baselines = append(rep.Baselines, row.ID)
		}
		rr := &rowRun{row: row, pair: pair, pidA: osPIDs[0], pidB: osPIDs[1], mem: map[string]*rssSampler{}, cpu: map[string][]float64{},
			res:  &RowResult{ID: row.ID, Name: row.Name, TLS: negotiated, Metrics: map[string]Stat{}, raw: map[string][]float64{}},
			busy: &RowResult{ID: row.ID, Name: row.Name, TLS: negotiated, Metrics: map[string]Stat{}, raw: map[string][]float64{}}, busyCPU: map[string][]float64{}}
		for host, p := range pair.Daemons {
			rr.mem[host] = startRSSSampler(p.Pid(), 100*time.Millisecond)
		}
		runs = append(runs, rr)
	}

	for round := 1; round <= cfg.Rounds; round++ {
		for _, rr := range runs {
			t0 := time.Now()
			if err := measureRound(rr, rr.res, rr.cpu, cfg.Sizes); err != nil {
				return nil, fmt.Errorf("row %s, round %d: %w", rr.row.ID, round, err)
			}
			logf("round %d/%d, row %s: %v (bulk %.0f MB/s, erpc p50 %.0f µs)", round, cfg.Rounds, rr.row.ID,
				time.Since(t0).Round(time.Millisecond), last(rr.res.raw["bulk_mbps"]), last(rr.res.raw["erpc_p50_us"]))
		}
		if cfg.Busy {
			if err := busyRound(runs, round, cfg, logf); err != nil {
				return nil, err
			}
		}
	}

	for _, rr := range runs {
		hosts := make([]string, 0, len(rr.mem))
		for h := range rr.mem {
			hosts = append(hosts, h)
		}
		slices.Sort(hosts)
		for _, h := range hosts {
			m := rr.mem[h].stop()
			m.Host = h
			rr.res.Daemons = append(rr.res.Daemons, m)
		}
		rr.res.summarize(rr.cpu)
		rep.Rows = append(rep.Rows, *rr.res)
		if cfg.Busy {
			rr.busy.summarize(rr.busyCPU)
			rep.Busy = append(rep.Busy, *rr.busy)
		}
	}
	judge(rep.Rows, rows, false)
	judge(rep.Busy, rows, true)

	for _, n := range cfg.ScalePeers {
		reaches := []int{n}
		if cfg.ScaleReach > 0 && cfg.ScaleReach < n {
			reaches = append(reaches, cfg.ScaleReach)
		}
		for _, reach := range reaches {
			s, err := measureScale(env, n, reach)
			if err != nil {
				return nil, fmt.Errorf("scale %d peers, %d reachable: %w", n, reach, err)
			}
			logf("scale: %d peers, %d reachable: applied in %.0f ms (CPU %.0f ms), VmRSS %d KiB, status in %.0f ms, one peer added in %.0f ms (CPU %.1f ms)",
				n, reach, s.ReadyMs, s.ReadyCPUMs, s.RSSKB, s.StatusMs, s.AddPeerMs, s.AddPeerCPUMs)
			rep.Scale = append(rep.Scale, s)
		}
	}
	for _, n := range cfg.LoadedScalePeers {
		s, err := measureLoadedScale(env, n, cfg.Sizes)
		if err != nil {
			return nil, fmt.Errorf("scale %d peers under load: %w", n, err)
		}
		logf("scale: %d peers under bulk: %.0f MB/s, daemons' peak VmRSS %d and %d KiB", n, s.BulkMBps, s.Daemons[0].PeakRSSKB, s.Daemons[1].PeakRSSKB)
		rep.LoadedScale = append(rep.LoadedScale, s)
	}
	if cfg.ProfileDir != "" {
		profs, err := profileBulk(env, cmp.Or(cfg.ProfileRow, "nwuser"), cfg.ProfileDir, cfg.Sizes, logf)
		if err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		rep.Profiles = profs
	}
	rep.Duration = time.Since(rep.Started).Round(time.Second).String()
	return rep, nil
}

func last(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return v[len(v)-1]
}

// busyRound runs one round of every row with every CPU kept busy, and
// always stops the load before returning.
func busyRound(runs []*rowRun, round int, cfg Config, logf func(string, ...any)) error {
	load, err := startBusy()
	if err != nil {
		return err
	}
	defer load.stop()
	for _, rr := range runs {
		t0 := time.Now()
		if err := measureRound(rr, rr.busy, rr.busyCPU, cfg.Sizes); err != nil {
			return fmt.Errorf("row %s, busy round %d: %w", rr.row.ID, round, err)
		}
		logf("round %d/%d busy, row %s: %v (bulk %.0f MB/s, erpc p50 %.0f µs)", round, cfg.Rounds, rr.row.ID,
			time.Since(t0).Round(time.Millisecond), last(rr.busy.raw["bulk_mbps"]), last(rr.busy.raw["erpc_p50_us"]))
	}
	return nil
}

// measureRound runs every workload once on a row, adding its figures to
// res and the bulk CPU use to cpu.
func measureRound(rr *rowRun, res *RowResult, cpu map[string][]float64, sz Sizes) error {
	a, b := rr.pair.A, rr.pair.B
	add := func(k string, v float64) { res.raw[k] = append(res.raw[k], v) }
	ctxFor := func(d time.Duration) (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), d)
	}

	pids := map[string]int{"node A (sender)": rr.pidA, "node B (receiver)": rr.pidB}
	for host, d := range rr.pair.Daemons {
		pids["daemon on "+host] = d.Pid()
	}
	meter := startCPUMeter(pids)
	ctx, cancel := ctxFor(sz.BulkDuration + 2*time.Minute)
	mbps, err := stream(ctx, a, b, 1, sz.MessageSize, sz.Window, sz.BulkDuration)
	cancel()
	if err != nil {
		return fmt.Errorf("bulk: %w", err)
	}
	add("bulk_mbps", mbps)
	for k, v := range meter.stop() {
		cpu[k] = append(cpu[k], v)
	}

	ctx, cancel = ctxFor(sz.BulkDuration + 2*time.Minute)
	mbps, err = stream(ctx, a, b, sz.Senders, sz.MessageSize, sz.ParallelWindow, sz.BulkDuration)
	cancel()
	if err != nil {
		return fmt.Errorf("parallel: %w", err)
	}
	add("parallel_mbps", mbps)

	ctx, cancel = ctxFor(2 * time.Minute)
	ds, err := pingpong(ctx, a, b, sz.PingPongSize, sz.PingPongs)
	cancel()
	if err != nil {
		return fmt.Errorf("ping-pong: %w", err)
	}
	add("pingpong_p50_us", micros(percentile(ds, 50)))
	add("pingpong_p99_us", micros(percentile(ds, 99)))

	ctx, cancel = ctxFor(2 * time.Minute)
	ds, err = erpcRTT(ctx, a, b, sz.Calls)
	cancel()
	if err != nil {
		return fmt.Errorf("erpc: %w", err)
	}
	add("erpc_p50_us", micros(percentile(ds, 50)))
	add("erpc_p99_us", micros(percentile(ds, 99)))

	var cold []time.Duration
	retries := 0
	for range sz.ColdSamples {
		ctx, cancel = ctxFor(time.Minute)
		d, r, err := coldConnect(ctx, a, b)
		cancel()
		if err != nil {
			return fmt.Errorf("cold connect: %w", err)
		}
		cold = append(cold, d)
		retries += r
	}
	// Not a table figure: how often the nodes reconnected on their own
	// before a sample could be taken (JSON only).
	add("cold_retries", float64(retries))
	slices.Sort(cold)
	add("cold_p50_ms", millis(percentile(cold, 50)))
	add("cold_max_ms", millis(cold[len(cold)-1]))
	return nil
}

// summarize turns the row's rounds, and cpu (each process's CPU share
// during bulk, per round), into its figures.
func (res *RowResult) summarize(cpu map[string][]float64) {
	for k, v := range res.raw {
		res.Metrics[k] = summarize(v)
	}
	res.BulkCPU = map[string]Stat{}
	for k, v := range cpu {
		res.BulkCPU[k] = summarize(v)
	}
}

// judge fills in, per metric, the ratio of every row of results to the
// better of the baseline rows (measured in the same condition: the lower
// latency, the higher throughput) and, for judged rows, whether each target
// is met (busy: the busy host's targets).
func judge(results []RowResult, rows []Row, busy bool) {
	judged, baseline := map[string]bool{}, map[string]bool{}
	for _, r := range rows {
		judged[r.ID], baseline[r.ID] = r.Judged, r.Baseline
	}
	for _, m := range Metrics {
		var best *RowResult
		for i := range results {
			b := &results[i]
			s, ok := b.Metrics[m.Key]
			if !baseline[b.ID] || !ok || s.Median == 0 {
				continue
			}
			if best == nil || better(m, s.Median, best.Metrics[m.Key].Median) {
				best = b
			}
		}
		if best == nil {
			continue
		}
		ref := best.Metrics[m.Key].Median
		for i := range results {
			r := &results[i]
			s, ok := r.Metrics[m.Key]
			if !ok {
				continue
			}
			s.Ratio, s.Against = s.Median/ref, best.ID
			target := m.Target
			if busy && m.BusyTarget != 0 {
				target = m.BusyTarget
			}
			if judged[r.ID] && target != 0 {
				meets := s.Ratio <= target
				if m.Higher {
					meets = s.Ratio >= target
				}
				s.Meets, s.Target = &meets, target
			}
			r.Metrics[m.Key] = s
		}
	}
}

// better reports whether figure a of metric m beats figure b.
func better(m Metric, a, b float64) bool {
	if m.Higher {
		return a > b
	}
	return a < b
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	const eval = `_ = ssl:start(), {ok, V} = application:get_key(ssl, vsn),
		io:format("~s ssl ~s, default versions ~w", [erlang:system_info(otp_release), V, proplists:get_value(supported, ssl:versions())]), halt().`
	if out, err := exec.Command("erl", "-noshell", "-eval", eval).Output(); err == nil {
		m.OTP, m.SSL, _ = strings.Cut(strings.TrimSpace(string(out)), " ")
	}
	return m
}
