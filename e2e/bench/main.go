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
	rounds := flag.Int("rounds", 3, "rounds of every workload on every row")
	rows := flag.String("rows", "", "comma-separated row IDs to run (default all; the baseline always runs)")
	quick := flag.Bool("quick", false, "tiny workloads (a smoke run)")
	profile := flag.String("profile", "", "also profile the sending and receiving overlayd under bulk; profiles go to `DIR`")
	scale := flag.String("scale", "1000,10000", "peer-file sizes for the overlayd start-up and memory measurement (empty: none)")
	out := flag.String("out", defaultResults(), "directory for the JSON results")
	flag.Parse()

	log.SetFlags(log.Ltime)
	tb := cluster.NewStandalone(log.Printf)
	defer tb.Close()
	if err := cluster.SweepStale(); err != nil {
		log.Printf("sweeping stale runs: %v", err)
	}
	cfg := Config{Sizes: DefaultSizes, Rounds: *rounds, ProfileDir: *profile, Logf: log.Printf}
	if *quick {
		cfg.Sizes = QuickSizes
	}
	if *rows != "" {
		for _, id := range strings.Split(*rows, ",") {
			if _, err := rowByID(id); err != nil {
				tb.Fatalf("-rows: %v", err)
			}
			cfg.Rows = append(cfg.Rows, id)
		}
	}
	for _, f := range strings.Split(*scale, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		var n int
		if _, err := fmt.Sscan(f, &n); err != nil || n < 2 {
			tb.Fatalf("-scale: %q is not a peer count of at least 2", f)
		}
		cfg.ScalePeers = append(cfg.ScalePeers, n)
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
