// Command bench compares ways of carrying Erlang distribution between two
// network-namespace hosts joined by veth: plain TCP, inet_tls_dist (TLS 1.3,
// verified both ways) and nodewire, each running the same Erlang workloads.
// It prints a table of medians with their spread and ratios to
// inet_tls_dist, and writes the same as JSON under e2e/bench/results/.
// Run it as root (`make bench` does, and cleans up).
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/nodewire/nodewire/e2e/cluster"
)

func main() {
	rounds := flag.Int("rounds", 5, "rounds of every workload on every row")
	rows := flag.String("rows", "", "comma-separated row IDs to run (default all; the baseline always runs)")
	quick := flag.Bool("quick", false, "tiny workloads (a smoke run)")
	bulkFor := flag.Duration("bulk", DefaultSizes.BulkDuration, "how long each bulk workload sends (short: more rounds of the round-trip workloads in the same time)")
	profile := flag.String("profile", "", "also profile the sending and receiving overlayd under bulk; profiles go to `DIR`")
	profileRow := flag.String("profile-row", "nwuser", "the nodewire row -profile profiles: nwuser or nwtun")
	scale := flag.String("scale", "1000,10000", "peer-file sizes for the overlayd start-up and memory measurement (empty: none)")
	scaleReach := flag.Int("scale-reach", 200, "also measure each -scale size with only this many peers reachable by the policy (0: not)")
	loaded := flag.String("loaded-scale", "1000", "peer-file sizes for which the userspace row runs bulk again to sample overlayd's memory (empty: none)")
	before := flag.String("before", "", "also run nodewire userspace (and TUN, and over TCP 443, when the run has those rows) with overlayd built at each of these comma-separated git `REVS` (a before/after in one run)")
	stdBind := flag.Bool("std-bind", false, "also run nodewire userspace and TUN with overlayd on wireguard-go's StdNetBind (rows stduser, stdtun) to compare with udpbind")
	busy := flag.Bool("busy", true, "also run every round with each CPU kept busy by an idle-priority loop, and report both conditions")
	budget := flag.Bool("budget", false, "instead of the rows, measure the latency budget: per-hop times of a 64-byte round trip through overlayd built with -tags hoptrace, both modes")
	budgetPings := flag.Int("budget-pings", 3000, "round trips per mode and condition for -budget")
	coldSteps := flag.Int("cold-steps", 0, "instead of the table, time `N` cold connects per row and round step by step (EPMD lookup, TCP connect, handshake replies), idle and with -busy busy")
	out := flag.String("out", defaultResults(), "directory for the JSON results")
	wan := flag.Bool("wan", false, "run the real-network matrix instead (`make wan`): every row across one lossy, slow link per cell; -rounds defaults to 2, -quick picks "+strings.Join(QuickCells, ","))
	cells := flag.String("cells", "", "with -wan: comma-separated cell IDs to run (default all; clean always runs)")
	kernelCC := flag.String("kernel-cc", "", "with -wan: the congestion control of the hosts' kernel TCP (plain and TLS distribution, TUN mode), e.g. cubic; default the machine's")
	idle := flag.Duration("idle", 0, "instead of the rows, measure the idle CPU of overlayd with -idle-peers quiet peers over a window this long, both modes")
	idlePeers := flag.Int("idle-peers", 10, "peers of the -idle overlay besides the measured host")
	flag.Parse()

	log.SetFlags(log.Ltime)
	tb := cluster.NewStandalone(log.Printf)
	defer tb.Close()
	if err := cluster.SweepStale(); err != nil {
		log.Printf("sweeping stale runs: %v", err)
	}
	if *budget {
		rep, err := Budget(tb, *budgetPings, *busy, log.Printf)
		if err != nil {
			tb.Fatalf("budget: %v", err)
		}
		PrintBudget(os.Stdout, rep)
		path, err := writeJSONAs(*out, "budget", rep.Started, rep)
		if err != nil {
			tb.Fatalf("budget: %v", err)
		}
		fmt.Printf("\nresults: %s\n", path)
		return
	}
	if *idle > 0 {
		rep, err := Idle(tb, *idlePeers, *idle, log.Printf)
		if err != nil {
			tb.Fatalf("idle: %v", err)
		}
		PrintIdle(os.Stdout, rep)
		path, err := writeJSONAs(*out, "idle", rep.Started, rep)
		if err != nil {
			tb.Fatalf("idle: %v", err)
		}
		fmt.Printf("\nresults: %s\n", path)
		return
	}
	if *wan {
		roundsSet := false
		flag.Visit(func(f *flag.Flag) { roundsSet = roundsSet || f.Name == "rounds" })
		cfg := WANConfig{Sizes: DefaultWANSizes, Rounds: 2, Logf: log.Printf, KernelCC: *kernelCC}
		if roundsSet {
			cfg.Rounds = *rounds
		}
		ids := strings.Split(*cells, ",")
		if *cells == "" && *quick {
			ids = QuickCells
			if !roundsSet {
				cfg.Rounds = 1
			}
		}
		for _, id := range ids {
			if id = strings.TrimSpace(id); id == "" {
				continue
			}
			c, err := cellByID(id)
			if err != nil {
				tb.Fatalf("-cells: %v", err)
			}
			cfg.Cells = append(cfg.Cells, c)
		}
		for _, id := range strings.Split(*rows, ",") {
			if id = strings.TrimSpace(id); id == "" {
				continue
			}
			if _, err := rowByID(id); err != nil {
				tb.Fatalf("-rows: %v", err)
			}
			cfg.Rows = append(cfg.Rows, id)
		}
		for _, rev := range strings.Split(*before, ",") {
			if rev = strings.TrimSpace(rev); rev != "" {
				cfg.Before = append(cfg.Before, rev)
			}
		}
		rep, err := RunWAN(tb, cfg)
		if err != nil {
			tb.Fatalf("wan: %v", err)
		}
		PrintWANTable(os.Stdout, rep)
		path, err := WriteWANJSON(*out, rep)
		if err != nil {
			tb.Fatalf("wan: %v", err)
		}
		fmt.Printf("\nresults: %s\n", path)
		return
	}
	cfg := Config{Sizes: DefaultSizes, Rounds: *rounds, ProfileDir: *profile, ProfileRow: *profileRow, StdBind: *stdBind, Busy: *busy, Logf: log.Printf}
	for _, rev := range strings.Split(*before, ",") {
		if rev = strings.TrimSpace(rev); rev != "" {
			cfg.Before = append(cfg.Before, rev)
		}
	}
	if *quick {
		cfg.Sizes = QuickSizes
	} else {
		cfg.Sizes.BulkDuration = *bulkFor
	}
	if *rows != "" {
		for _, id := range strings.Split(*rows, ",") {
			if _, err := rowByID(id); err != nil && !(*stdBind && strings.HasPrefix(id, StdBindRow)) {
				tb.Fatalf("-rows: %v", err)
			}
			cfg.Rows = append(cfg.Rows, id)
		}
	}
	var err error
	if cfg.ScalePeers, err = peerCounts(*scale); err != nil {
		tb.Fatalf("-scale: %v", err)
	}
	cfg.ScaleReach = *scaleReach
	if cfg.LoadedScalePeers, err = peerCounts(*loaded); err != nil {
		tb.Fatalf("-loaded-scale: %v", err)
	}
	if *coldSteps > 0 {
		rep, err := ColdSteps(tb, cfg, *coldSteps)
		if err != nil {
			tb.Fatalf("cold steps: %v", err)
		}
		PrintColdSteps(os.Stdout, rep)
		path, err := writeJSONAs(*out, "coldsteps", rep.Started, rep)
		if err != nil {
			tb.Fatalf("cold steps: %v", err)
		}
		fmt.Printf("\nresults: %s\n", path)
		return
	}
	rep, err := Run(tb, cfg)
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	PrintTable(os.Stdout, rep)
	path, err := WriteJSON(*out, rep)
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	fmt.Printf("\nresults: %s\n", path)
}

// defaultResults is e2e/bench/results next to this source file, wherever
// the command runs from.
func defaultResults() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "results"
	}
	return filepath.Join(filepath.Dir(file), "results")
}

// peerCounts parses a comma-separated list of peer counts.
func peerCounts(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		var n int
		if _, err := fmt.Sscan(f, &n); err != nil || n < 2 {
			return nil, fmt.Errorf("%q is not a peer count of at least 2", f)
		}
		out = append(out, n)
	}
	return out, nil
}
