package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// The real-network matrix (`make wan`): every row's two hosts sit on either
// side of ONE impaired link, so in each cell all rows cross the same loss,
// delay and MTU:
//
//	row hosts "a" ── br0 ── wa ═ wa0 ┐                      ┌ wb0 ═ wb ── brb ── row hosts "b"
//	                                 └─ nwattack wire (delay, jitter, reorder) ─┘
//	                       nftables (bridge family, forward hook) drops frames on their way into wa and wb
//
// Both bridges and the wire live in the run's switch namespace. The kernel
// has no sch_netem, so delay is the userspace wire's job (it carries any
// protocol, so plain and TLS distribution's TCP crosses it like nodewire's
// UDP) and loss is nftables' (numgen random for random loss, numgen inc
// for bursts). The hosts' eth0 send no GSO super-frames (ethtool: tso,
// gso, tx-udp-segmentation off), so every drop is one wire-sized packet;
// the wire counts frames longer than the MTU and the report shows any.

// Cell is one link condition of the matrix.
type Cell struct {
	ID   string `json:"id"`
	Desc string `json:"desc"`
	// LossPermille drops that many of every 1000 IPv4 frames at random,
	// each way.
	LossPermille int `json:"loss_permille,omitempty"`
	// Burst drops 10 IPv4 frames in a row of every 200, each way.
	Burst bool `json:"burst,omitempty"`
	// Outage drops every frame, both ways at once, for Outage at the start
	// of every OutageEvery (the wire's clock): a burst that counts time,
	// not frames.
	Outage      time.Duration `json:"outage,omitempty"`
	OutageEvery time.Duration `json:"outage_every,omitempty"`
	// Delay ± Jitter one way; Reorder is the share of frames held back
	// ReorderGap longer, so later ones overtake them.
	Delay      time.Duration `json:"delay,omitempty"`
	Jitter     time.Duration `json:"jitter,omitempty"`
	Reorder    float64       `json:"reorder,omitempty"`
	ReorderGap time.Duration `json:"reorder_gap,omitempty"`
	// MTU of every underlay interface; 0 is 1500.
	MTU int `json:"mtu,omitempty"`
}

// CleanCell is the reference every row's figures are divided by.
const CleanCell = "clean"

func delayCell(id string, delay, jitter time.Duration, loss int) Cell {
	c := Cell{ID: id, Delay: delay, Jitter: jitter, Reorder: 0.01, ReorderGap: 2 * time.Millisecond, LossPermille: loss}
	c.Desc = fmt.Sprintf("%v ±%v one way, 1%% of frames 2 ms late (reordered)", delay, jitter)
	if loss > 0 {
		c.Desc += fmt.Sprintf(", %s%% random loss", permille(loss))
	}
	return c
}

func lossCell(permil int) Cell {
	return Cell{ID: "loss" + permille(permil), LossPermille: permil, Desc: permille(permil) + "% random loss each way"}
}

func permille(p int) string {
	return strings.TrimSuffix(strings.TrimSuffix(strconv.FormatFloat(float64(p)/10, 'f', 1, 64), "0"), ".")
}

// WANCells is the full matrix, in table order.
var WANCells = []Cell{
	{ID: CleanCell, Desc: "no impairment (the same wire, 0 loss, 0 delay, MTU 1500)"},
	lossCell(5), lossCell(10), lossCell(20), lossCell(50), lossCell(100),
	{ID: "burst", Burst: true, Desc: "burst loss: 10 frames in a row of every 200, each way (5%)"},
	{ID: "outage", Outage: 10 * time.Millisecond, OutageEvery: 200 * time.Millisecond,
		Desc: "burst loss in time: every frame both ways lost for 10 ms of every 200 (5%; a flapping link, a radio fade)"},
	delayCell("delay20", 20*time.Millisecond, 2*time.Millisecond, 0),
	{ID: "fifo20", Delay: 20 * time.Millisecond, Jitter: 2 * time.Millisecond,
		Desc: "20ms ±2ms one way, nothing reordered (delay20 without its reordering, to tell the two apart)"},
	delayCell("delay100", 100*time.Millisecond, 10*time.Millisecond, 0),
	delayCell("d20loss1", 20*time.Millisecond, 2*time.Millisecond, 10),
	{ID: "mtu1400", MTU: 1400, Desc: "underlay MTU 1400 (every interface on the path)"},
	{ID: "mtu1280", MTU: 1280, Desc: "underlay MTU 1280 (every interface on the path)"},
}

// QuickCells is -quick's subset.
var QuickCells = []string{CleanCell, "loss1", "loss5", "delay20", "mtu1400"}

func cellByID(id string) (Cell, error) {
	for _, c := range WANCells {
		if c.ID == id {
			return c, nil
		}
	}
	ids := make([]string, len(WANCells))
	for i, c := range WANCells {
		ids[i] = c.ID
	}
	return Cell{}, fmt.Errorf("no cell %q (cells: %s)", id, strings.Join(ids, ","))
}

// WANSizes bounds each row's measurement in one cell.
type WANSizes struct {
	BulkDuration time.Duration // goodput: how long the sender sends
	MessageSize  int
	Window       int           // messages in flight
	AckTimeout   time.Duration // first acknowledgement of the bulk transfer
	Drain        time.Duration // longest wait for the window after the bulk
	MinCalls     int           // erpc: at least this many calls...
	MinTime      time.Duration // ...in at least this long,
	MaxCalls     int           // at most this many calls,
	MaxTime      time.Duration // or this long
	CallTimeout  time.Duration // one erpc:call longer than this: "timeout"
	Connect      time.Duration // connection setup longer than this: "unreachable"
}

// DefaultWANSizes is what `make wan` runs.
var DefaultWANSizes = WANSizes{
	BulkDuration: 4 * time.Second, MessageSize: 256 << 10, Window: 32,
	AckTimeout: 20 * time.Second, Drain: 10 * time.Second,
	MinCalls: 30, MinTime: 1500 * time.Millisecond, MaxCalls: 400, MaxTime: 6 * time.Second,
	CallTimeout: 10 * time.Second, Connect: 30 * time.Second,
}

// QuickWANSizes is the smoke test's.
var QuickWANSizes = WANSizes{
	BulkDuration: 300 * time.Millisecond, MessageSize: 64 << 10, Window: 8,
	AckTimeout: 3 * time.Second, Drain: 2 * time.Second,
	MinCalls: 10, MinTime: 100 * time.Millisecond, MaxCalls: 50, MaxTime: 2 * time.Second,
	CallTimeout: 2 * time.Second, Connect: 5 * time.Second,
}

// WANConfig is one run of the matrix.
type WANConfig struct {
	Cells  []Cell // CleanCell is added first if missing
	Rows   []string
	Before []string
	// KernelCC is the congestion control of the hosts' kernel TCP; empty
	// keeps the machine's default (net.ipv4.tcp_congestion_control).
	KernelCC string
	Sizes    WANSizes
	Rounds   int
	Logf     func(format string, args ...any)
}

// WANReport is what a matrix run measured; also its JSON.
type WANReport struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Machine  Machine   `json:"machine"`
	Sizes    WANSizes  `json:"sizes"`
	Rounds   int       `json:"rounds"`
	// KernelCC is the congestion control the hosts' kernel TCP used
	// (plain distribution's, TUN mode's inner TCP): BBR does not take
	// random loss as congestion, loss-based ones (cubic, reno) do.
	KernelCC string          `json:"kernel_cc"`
	Rows     []WANRow        `json:"rows"`
	Cells    []WANCellResult `json:"cells"`
}

// WANRow names a row of the matrix.
type WANRow struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// WANCellResult is one cell: the link as applied and every row's figures.
type WANCellResult struct {
	Cell Cell              `json:"cell"`
	Link LinkStats         `json:"link"`
	Rows map[string]WANFig `json:"rows"`
}

// LinkStats is what the link did during a cell.
type LinkStats struct {
	FramesAB  uint64 `json:"frames_ab"`
	FramesBA  uint64 `json:"frames_ba"`
	DroppedAB uint64 `json:"dropped_ab"` // by nftables
	DroppedBA uint64 `json:"dropped_ba"`
	OutageAB  uint64 `json:"outage_ab"` // by the wire's outages (Cell.Outage)
	OutageBA  uint64 `json:"outage_ba"`
	GSO       uint64 `json:"gso_frames"` // frames longer than the MTU: should be 0
	Reordered uint64 `json:"reordered"`
	TailDrops uint64 `json:"tail_drops"`
	WriteErrs uint64 `json:"write_errors"`
	// RxDrops are frames the kernel dropped because the wire did not read
	// them in time: loss the cell did not ask for.
	RxDrops uint64 `json:"rx_drops"`
	// Late frames left the wire more than 2 ms after they were due
	// (LateMaxUs the worst, in µs): the wire was starved of CPU, so the
	// cell had more delay and jitter than it asked for.
	Late      uint64 `json:"late_frames"`
	LateMaxUs uint64 `json:"late_max_us"`
}

// WANFig is one row's figures in one cell.
type WANFig struct {
	ConnectMs   Outcome `json:"connect_ms"`
	GoodputMBps Outcome `json:"goodput_mbps"`
	P50Ms       Outcome `json:"erpc_p50_ms"`
	P99Ms       Outcome `json:"erpc_p99_ms"`
	// Undrained counts rounds whose bulk window had not drained when the
	// next measurement began.
	Undrained int `json:"undrained,omitempty"`
	// Path sums, over the rounds, the counters past the wire that moved
	// during the row's turns (wandrops.go): "a." the sending host, "b."
	// the receiving one, e.g. b.wg_udp_drops, a.stack_rto.
	Path map[string]uint64 `json:"path_counters,omitempty"`
}

// Outcome is one figure over the rounds: the median of the rounds that
// measured it, and how the others failed ("lost", "timeout",
// "unreachable", "stalled", "error"). A figure with no successful round
// has no value, only its failures.
type Outcome struct {
	Rounds  []float64      `json:"rounds,omitempty"`
	Median  float64        `json:"median,omitempty"`
	Min     float64        `json:"min,omitempty"`
	Max     float64        `json:"max,omitempty"`
	Fails   map[string]int `json:"fails,omitempty"`
	OfClean float64        `json:"of_clean,omitempty"` // Median / the row's clean median
	VsPlain float64        `json:"vs_plain,omitempty"` // Median / plain's median, same cell
	last    string         // the latest round, for the log
}

// OK reports whether any round measured the figure.
func (o Outcome) OK() bool { return len(o.Rounds) > 0 }

func (o *Outcome) add(v float64, fail string) {
	o.last = fail
	if fail == "" {
		o.last = fmt3(v)
	}
	if fail != "" {
		if o.Fails == nil {
			o.Fails = map[string]int{}
		}
		o.Fails[fail]++
		return
	}
	o.Rounds = append(o.Rounds, v)
	s := summarize(o.Rounds)
	o.Median, o.Min, o.Max = s.Median, s.Min, s.Max
}

// wanLink is the impaired link of a run.
type wanLink struct {
	c       *cluster.Cluster
	sw      string // switch namespace
	nwatt   string // nwattack binary
	dir     string
	wire    *exec.Cmd
	wireOut string
	wireEnd chan error
	hostsNS []string // every row host's namespace
	ports   []string // every row host's switch port
	// kernelCC, if set, is the congestion control the hosts' kernel TCP
	// uses (plain and TLS distribution, TUN mode's inner TCP); cc is what
	// they use, for the report.
	kernelCC string
	cc       string
}

const nftTable = "nwwan"

// newWANLink adds bridge brb and the wire's veth pairs to the switch
// namespace.
func newWANLink(c *cluster.Cluster, tb cluster.TB) (*wanLink, error) {
	l := &wanLink{c: c, sw: c.SwitchNS(), dir: c.Dir(),
		nwatt: cluster.BuildBinaries(tb, "github.com/nodewire/nodewire/e2e/nwattack")["nwattack"]}
	for _, args := range [][]string{
		{"link", "add", "brb", "type", "bridge", "forward_delay", "0", "stp_state", "0"},
		{"link", "set", "brb", "up"},
		{"link", "add", "wa", "type", "veth", "peer", "name", "wa0"},
		{"link", "add", "wb", "type", "veth", "peer", "name", "wb0"},
		{"link", "set", "wa", "master", "br0"},
		{"link", "set", "wb", "master", "brb"},
		{"link", "set", "wa", "up"}, {"link", "set", "wa0", "up"},
		{"link", "set", "wb", "up"}, {"link", "set", "wb0", "up"},
	} {
		if err := l.ip(args...); err != nil {
			return nil, err
		}
	}
	tb.Cleanup(func() { _, _ = l.stopWire() })
	return l, nil
}

func (l *wanLink) ip(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"-n", l.sw}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s %s: %v: %s", l.sw, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (l *wanLink) inNS(ns string, argv ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %s: %v: %s", ns, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// attach puts a row's hosts on their sides of the link: host a stays on
// br0, host b moves to brb; neither sends GSO frames.
func (l *wanLink) attach(a, b *cluster.Host) error {
	if err := l.ip("link", "set", b.SwitchPort, "master", "brb"); err != nil {
		return err
	}
	for _, h := range []*cluster.Host{a, b} {
		if err := l.inNS(h.NS, "ethtool", "-K", h.Veth, "tso", "off", "gso", "off", "tx-udp-segmentation", "off"); err != nil {
			return fmt.Errorf("turning segmentation offload off: %w", err)
		}
		if l.kernelCC != "" {
			if err := l.inNS(h.NS, "sysctl", "-qw", "net.ipv4.tcp_congestion_control="+l.kernelCC); err != nil {
				return fmt.Errorf("setting the kernel's congestion control (a namespace may use only those in net.ipv4.tcp_allowed_congestion_control): %w", err)
			}
		}
		if out, err := exec.Command("ip", "netns", "exec", h.NS, "sysctl", "-n", "net.ipv4.tcp_congestion_control").Output(); err == nil {
			l.cc = strings.TrimSpace(string(out))
		}
		l.hostsNS = append(l.hostsNS, h.NS)
		l.ports = append(l.ports, h.SwitchPort)
	}
	return nil
}

// apply sets the link to cell: MTU everywhere, nftables loss and a fresh
// wire with the cell's delay.
func (l *wanLink) apply(cell Cell) error {
	if _, err := l.stopWire(); err != nil {
		return err
	}
	mtu := strconv.Itoa(cmp.Or(cell.MTU, 1500))
	for _, ns := range l.hostsNS {
		if err := l.inNS(ns, "ip", "link", "set", "eth0", "mtu", mtu); err != nil {
			return err
		}
	}
	for _, dev := range append(slices.Clone(l.ports), "wa", "wa0", "wb", "wb0") {
		if err := l.ip("link", "set", dev, "mtu", mtu); err != nil {
			return err
		}
	}
	_ = l.inNS(l.sw, "nft", "delete", "table", "bridge", nftTable) // absent the first time
	var rule string
	switch {
	case cell.Burst:
		rule = "numgen inc mod 200 < 10"
	case cell.LossPermille >= 1000:
		rule = "meta length > 0" // every frame
	case cell.LossPermille > 0:
		rule = fmt.Sprintf("numgen random mod 1000 < %d", cell.LossPermille)
	}
	if rule != "" {
		// One rule per direction: each has its own numgen counter.
		script := fmt.Sprintf(`table bridge %s {
	chain lossy {
		type filter hook forward priority 0; policy accept;
		oifname "wa" ether type ip %s counter drop
		oifname "wb" ether type ip %s counter drop
	}
}
`, nftTable, rule, rule)
		f := filepath.Join(l.dir, "wan.nft")
		if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
			return err
		}
		if err := l.inNS(l.sw, "nft", "-f", f); err != nil {
			return err
		}
	}
	return l.startWire(cell)
}

func (l *wanLink) startWire(cell Cell) error {
	l.wireOut = filepath.Join(l.dir, "wire-"+cell.ID+".log")
	out, err := os.Create(l.wireOut)
	if err != nil {
		return err
	}
	defer out.Close()
	args := []string{"netns", "exec", l.sw, l.nwatt, "wire", "-a", "wa0", "-b", "wb0",
		"-delay", cell.Delay.String(), "-jitter", cell.Jitter.String(), "-reorder", strconv.FormatFloat(cell.Reorder, 'g', -1, 64)}
	if cell.Outage > 0 {
		args = append(args, "-outage", cell.Outage.String(), "-outage-every", cell.OutageEvery.String())
	}
	if cell.ReorderGap > 0 {
		args = append(args, "-gap", cell.ReorderGap.String())
	}
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("wire: %w", err)
	}
	l.wire, l.wireEnd = cmd, make(chan error, 1)
	go func() { l.wireEnd <- cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return cluster.Poll(ctx, 10*time.Millisecond, func() (bool, error) {
		b, _ := os.ReadFile(l.wireOut)
		if strings.Contains(string(b), "wire up") {
			return true, nil
		}
		select {
		case err := <-l.wireEnd:
			l.wire = nil
			return false, fmt.Errorf("wire exited: %v: %s", err, b)
		default:
			return false, nil
		}
	})
}

var kvRE = regexp.MustCompile(`([a-z_]+)=([0-9]+)`)

// stopWire stops the wire and returns its counters and nftables'.
func (l *wanLink) stopWire() (LinkStats, error) {
	var st LinkStats
	if l.wire == nil {
		return st, nil
	}
	_ = syscall.Kill(-l.wire.Process.Pid, syscall.SIGTERM)
	select {
	case <-l.wireEnd:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-l.wire.Process.Pid, syscall.SIGKILL)
		<-l.wireEnd
	}
	l.wire = nil
	b, _ := os.ReadFile(l.wireOut)
	kv := map[string]uint64{}
	for _, m := range kvRE.FindAllStringSubmatch(string(b), -1) {
		kv[m[1]], _ = strconv.ParseUint(m[2], 10, 64)
	}
	if _, ok := kv["frames_ab"]; !ok {
		return st, fmt.Errorf("wire printed no counters: %s", b)
	}
	st = LinkStats{FramesAB: kv["frames_ab"], FramesBA: kv["frames_ba"], OutageAB: kv["outage_ab"], OutageBA: kv["outage_ba"],
		GSO: kv["gso"], Reordered: kv["reordered"],
		TailDrops: kv["tail_drops"], WriteErrs: kv["write_errors"], RxDrops: kv["rx_drops"],
		Late: kv["late"], LateMaxUs: kv["late_max_us"]}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.sw, "nft", "list", "table", "bridge", nftTable).Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			m := regexp.MustCompile(`packets ([0-9]+)`).FindStringSubmatch(line)
			if m == nil {
				continue
			}
			n, _ := strconv.ParseUint(m[1], 10, 64)
			if strings.Contains(line, `"wa"`) {
				st.DroppedAB = n
			} else if strings.Contains(line, `"wb"`) {
				st.DroppedBA = n
			}
		}
	}
	return st, nil
}

// wanRun is one row set up for the matrix.
type wanRun struct {
	row  Row
	pair *Pair
}

// RunWAN sets up every row across one impaired link and measures each
// cell: the link is set to the cell, then each row (order rotated from
// cell to cell and round to round, so no row always goes first) connects
// afresh, times erpc:calls and a bulk transfer, and disconnects.
func RunWAN(tb cluster.TB, cfg WANConfig) (*WANReport, error) {
	if cfg.Rounds < 1 {
		return nil, fmt.Errorf("rounds %d: want at least 1", cfg.Rounds)
	}
	logf := cfg.Logf
	if logf == nil {
		logf = tb.Logf
	}
	cells := slices.Clone(cfg.Cells)
	if len(cells) == 0 {
		cells = slices.Clone(WANCells)
	}
	if !slices.ContainsFunc(cells, func(c Cell) bool { return c.ID == CleanCell }) {
		cells = append([]Cell{WANCells[0]}, cells...)
	}
	rep := &WANReport{Started: time.Now(), Machine: machine(), Sizes: cfg.Sizes, Rounds: cfg.Rounds}
	env, err := newEnv(tb, "wan")
	if err != nil {
		return nil, err
	}
	c := env.C
	env.DaemonArgs = wanDaemonArgs
	link, err := newWANLink(c, tb)
	if err != nil {
		return nil, err
	}
	link.kernelCC = cfg.KernelCC
	rows, err := withBeforeRows(tb, cfg.Before, cfg.Rows)
	if err != nil {
		return nil, err
	}
	var runs []*wanRun
	for _, row := range rows {
		named := slices.Contains(cfg.Rows, row.ID)
		if (len(cfg.Rows) > 0 || row.WANOptIn) && !named && row.ID != "plain" && !strings.HasPrefix(row.ID, BeforeRow) {
			continue
		}
		t0 := time.Now()
		pair, err := row.Setup(env, row.ID)
		if err != nil {
			return nil, fmt.Errorf("row %s: setup: %w", row.ID, err)
		}
		if err := link.attach(pair.A.Host, pair.B.Host); err != nil {
			return nil, fmt.Errorf("row %s: %w", row.ID, err)
		}
		logf("row %s up in %v", row.ID, time.Since(t0).Round(time.Millisecond))
		rep.KernelCC = link.cc
		runs = append(runs, &wanRun{row: row, pair: pair})
		rep.Rows = append(rep.Rows, WANRow{ID: row.ID, Name: row.Name})
	}

	for ci, cell := range cells {
		if err := link.apply(cell); err != nil {
			return nil, fmt.Errorf("cell %s: %w", cell.ID, err)
		}
		for _, rr := range runs {
			if reset, err := resetStreams(rr.pair, cfg.Sizes.Connect, logf); err != nil {
				return nil, fmt.Errorf("cell %s: row %s: %w", cell.ID, rr.row.ID, err)
			} else if reset {
				logf("cell %s row %s: TCP 443 streams reset (wanstream.go)", cell.ID, rr.row.ID)
			}
		}
		res := WANCellResult{Cell: cell, Rows: map[string]WANFig{}}
		t0 := time.Now()
		for round := range cfg.Rounds {
			for i := range runs {
				rr := runs[(i+ci+round)%len(runs)]
				fig := res.Rows[rr.row.ID]
				s0 := samplePair(rr.pair)
				measureWAN(rr.pair, cfg.Sizes, &fig, logf)
				drops := samplePair(rr.pair).since(s0)
				if fig.Path == nil {
					fig.Path = map[string]uint64{}
				}
				for k, v := range drops {
					fig.Path[k] += v
				}
				res.Rows[rr.row.ID] = fig
				logf("cell %s round %d/%d row %s: connect %s, goodput %s MB/s, erpc p50 %s p99 %s ms; path: %s", cell.ID, round+1, cfg.Rounds, rr.row.ID,
					lastFig(fig.ConnectMs), lastFig(fig.GoodputMBps), lastFig(fig.P50Ms), lastFig(fig.P99Ms), formatDrops(drops))
			}
		}
		if res.Link, err = link.stopWire(); err != nil {
			return nil, fmt.Errorf("cell %s: %w", cell.ID, err)
		}
		logf("cell %s done in %v: link %+v", cell.ID, time.Since(t0).Round(time.Second), res.Link)
		rep.Cells = append(rep.Cells, res)
	}
	wanRatios(rep)
	rep.Duration = time.Since(rep.Started).Round(time.Second).String()
	return rep, nil
}

func lastFig(o Outcome) string { return cmp.Or(o.last, "-") }

// measureWAN runs one row's measurements in the current cell and adds them
// to fig. Nothing here aborts the matrix: a failure is recorded in its
// figure.
func measureWAN(p *Pair, sz WANSizes, fig *WANFig, logf func(string, ...any)) {
	a, b := p.A, p.B
	aAtom, bAtom := cluster.Atom(a.Name), cluster.Atom(b.Name)
	disconnect := func() {
		for _, d := range []struct {
			n     *cluster.Node
			other string
		}{{a, bAtom}, {b, aAtom}} {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			if _, err := d.n.Eval(ctx, fmt.Sprintf("benchwork:disconnect(%s, 10000).", d.other)); err != nil {
				logf("%s: disconnect: %v", d.n.Name, err)
			}
			cancel()
		}
	}
	failAll := func(why string) {
		fig.ConnectMs.add(0, why)
		fig.GoodputMBps.add(0, why)
		fig.P50Ms.add(0, why)
		fig.P99Ms.add(0, why)
	}
	disconnect()
	defer disconnect() // what is still queued must not load the next row's turn

	ctx, cancel := context.WithTimeout(context.Background(), sz.Connect)
	out, err := a.Eval(ctx, fmt.Sprintf("benchwork:cold(%s, 0).", bAtom))
	cancel()
	var ns int64
	if err == nil {
		ns, err = strconv.ParseInt(out, 10, 64)
		if out == "already_connected" {
			err = nil // b connected to a first: the connection is up, no time
			ns = -1
		}
	}
	if err != nil {
		logf("%s -> %s: connect: %v", a.Name, b.Name, err)
		failAll("unreachable") // pang, or no answer within sz.Connect
		return
	}
	if ns >= 0 {
		fig.ConnectMs.add(float64(ns)/1e6, "")
	}

	ctx, cancel = context.WithTimeout(context.Background(), sz.MaxTime+2*sz.CallTimeout+10*time.Second)
	out, err = a.Eval(ctx, fmt.Sprintf("benchwork:erpc_for(%s, %d, %d, %d, %d, %d).", bAtom, sz.MinCalls, sz.MaxCalls,
		sz.MinTime.Milliseconds(), sz.MaxTime.Milliseconds(), sz.CallTimeout.Milliseconds()))
	cancel()
	var ds []time.Duration
	if err == nil {
		ds, err = durationList(out)
	}
	if err != nil {
		logf("%s -> %s: erpc: %v", a.Name, b.Name, err)
		why := classify(err, "error")
		fig.P50Ms.add(0, why)
		fig.P99Ms.add(0, why)
	} else {
		fig.P50Ms.add(millis(percentile(ds, 50)), "")
		fig.P99Ms.add(millis(percentile(ds, 99)), "")
	}

	ctx, cancel = context.WithTimeout(context.Background(), sz.BulkDuration+sz.AckTimeout+sz.Drain+15*time.Second)
	out, err = a.Eval(ctx, fmt.Sprintf("benchwork:goodput(%s, %d, %d, %d, %d, %d).", bAtom, sz.MessageSize, sz.Window,
		sz.BulkDuration.Milliseconds(), sz.AckTimeout.Milliseconds(), sz.Drain.Milliseconds()))
	cancel()
	if err != nil {
		logf("%s -> %s: goodput: %v", a.Name, b.Name, err)
		fig.GoodputMBps.add(0, classify(err, "error"))
		return
	}
	m := goodputRE.FindStringSubmatch(out)
	if m == nil {
		logf("%s -> %s: goodput: unexpected result %s", a.Name, b.Name, out)
		fig.GoodputMBps.add(0, "error")
		return
	}
	bytes, _ := strconv.ParseFloat(m[1], 64)
	dur, _ := strconv.ParseFloat(m[2], 64)
	switch {
	case bytes == 0:
		fig.GoodputMBps.add(0, "stalled") // not one message in the whole time
	default:
		fig.GoodputMBps.add(bytes/(dur/1e9)/1e6, "")
	}
	if m[3] != "drained" {
		fig.Undrained++
	}
}

var goodputRE = regexp.MustCompile(`^\{([0-9]+),([0-9]+),([a-z_]+)\}$`)

// durationList parses a ~w list of nanoseconds.
func durationList(out string) ([]time.Duration, error) {
	if out == "[]" {
		return nil, errors.New("no samples")
	}
	var ds []time.Duration
	for _, f := range strings.Split(strings.Trim(out, "[]"), ",") {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("unexpected result element %q", f)
		}
		ds = append(ds, time.Duration(v))
	}
	slices.Sort(ds)
	return ds, nil
}

// classify names a failed measurement: "lost" when the distribution
// connection went down, "timeout" when an answer did not come in time,
// "unreachable" when no connection could be made, else def.
func classify(err error, def string) string {
	var ee *cluster.EvalError
	text := err.Error()
	if errors.As(err, &ee) {
		text = ee.Text
	}
	switch {
	case strings.Contains(text, "noconnection") || strings.Contains(text, "sink_down"):
		return "lost"
	case strings.Contains(text, "pang"):
		return "unreachable"
	case strings.Contains(text, "timeout") || errors.Is(err, context.DeadlineExceeded) || strings.Contains(text, "deadline exceeded"):
		return "timeout"
	}
	return def
}

// wanRatios fills in each figure's ratio to its row's clean cell and to
// plain distribution in the same cell.
func wanRatios(rep *WANReport) {
	var clean *WANCellResult
	for i := range rep.Cells {
		if rep.Cells[i].Cell.ID == CleanCell {
			clean = &rep.Cells[i]
		}
	}
	for i := range rep.Cells {
		cr := &rep.Cells[i]
		plain, hasPlain := cr.Rows["plain"]
		for id, f := range cr.Rows {
			var cf WANFig
			if clean != nil {
				cf = clean.Rows[id]
			}
			for _, p := range []struct{ o, c, pl *Outcome }{
				{&f.ConnectMs, &cf.ConnectMs, &plain.ConnectMs},
				{&f.GoodputMBps, &cf.GoodputMBps, &plain.GoodputMBps},
				{&f.P50Ms, &cf.P50Ms, &plain.P50Ms},
				{&f.P99Ms, &cf.P99Ms, &plain.P99Ms},
			} {
				if !p.o.OK() {
					continue
				}
				if p.c.OK() && p.c.Median > 0 {
					p.o.OfClean = p.o.Median / p.c.Median
				}
				if hasPlain && p.pl.OK() && p.pl.Median > 0 {
					p.o.VsPlain = p.o.Median / p.pl.Median
				}
			}
			cr.Rows[id] = f
		}
	}
}
