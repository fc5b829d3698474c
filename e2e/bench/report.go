package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// fmtVal prints a figure with about three significant digits.
func fmtVal(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// PrintTable writes the report for people: per metric one line per row,
// with the median over the rounds, the rounds' range and spread, and the
// ratio to the baseline (with the target, for nodewire's rows).
func PrintTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "nodewire bench %s: %s; %d rounds, %s\n",
		rep.Started.Format("2006-01-02 15:04:05"), rep.Machine, rep.Rounds, rep.Duration)
	sz := rep.Sizes
	fmt.Fprintf(w, "workloads: bulk %v of %d KiB messages, %d in flight (8 senders: %d each); %d ping-pongs of %d B; %d erpc:calls; %d cold connects per round\n",
		sz.BulkDuration, sz.MessageSize>>10, sz.Window, sz.ParallelWindow, sz.PingPongs, sz.PingPongSize, sz.Calls, sz.ColdSamples)
	var tls []string
	for _, r := range rep.Rows {
		if r.TLS != "" {
			tls = append(tls, fmt.Sprintf("%s negotiated %s", r.Name, r.TLS))
		}
	}
	fmt.Fprintf(w, "inet_tls_dist (verify_peer both ways): %s\n", strings.Join(tls, "; "))
	fmt.Fprintf(w, "median of the rounds [min-max, spread = (max-min)/median]; ratio = median / median of the better inet_tls_dist row for that metric\n")
	fmt.Fprintf(w, "(lower latency, higher throughput), named under the metric and marked * (%s)\n\n", strings.Join(rep.Baselines, ", "))
	printMetrics(w, rep.Rows)
	if len(rep.Busy) > 0 {
		fmt.Fprintf(w, "\nthe same with every CPU kept busy by an idle-priority loop (nice -n 19, one per CPU); ratio = median / the better busy inet_tls_dist row's median\n\n")
		printMetrics(w, rep.Busy)
	}
	printCPU(w, rep.Rows, rep.Machine.CPUs, "")
	printCPU(w, rep.Busy, rep.Machine.CPUs, ", every CPU busy")
	fmt.Fprintln(w)
	for _, r := range rep.Rows {
		for _, d := range r.Daemons {
			fmt.Fprintf(w, "\n%s overlayd on %s: VmRSS peak %.1f MiB (sampled every 100 ms), VmHWM %.1f MiB, at end %.1f MiB",
				r.Name, d.Host, kib(d.PeakRSSKB), kib(d.HWMKB), kib(d.EndRSSKB))
		}
	}
	if len(rep.Scale) > 0 {
		fmt.Fprintln(w)
	}
	for _, s := range rep.Scale {
		fmt.Fprintf(w, "\nscale: overlayd with a %d-peer file, %d reachable: loaded and applied in %.0f ms (start to control socket; CPU %.0f ms), VmRSS %.1f MiB (VmHWM %.1f MiB); a status request took %.0f ms; a reload adding one peer %.0f ms (CPU %.1f ms)",
			s.Peers, s.Reachable, s.ReadyMs, s.ReadyCPUMs, kib(s.RSSKB), kib(s.HWMKB), s.StatusMs, s.AddPeerMs, s.AddPeerCPUMs)
	}
	for _, s := range rep.LoadedScale {
		fmt.Fprintf(w, "\nscale: userspace row with a %d-peer file, under bulk (%.0f MB/s, 8 senders %.0f MB/s): overlayd VmRSS peak", s.Peers, s.BulkMBps, s.ParallelMBps)
		for i, d := range s.Daemons {
			sep := ","
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(w, "%s %.1f MiB on %s", sep, kib(d.PeakRSSKB), d.Host)
		}
	}
	fmt.Fprintln(w)
	for _, p := range rep.Profiles {
		fmt.Fprintf(w, "\nCPU profile of the %s's overlayd, %s (bulk %.0f MB/s, peak VmRSS %.1f MiB), %s:\n%s\n",
			p.Role, p.Row, p.MBps, kib(p.PeakRSSKB), p.CPU, indent(p.Top))
	}
}

func kib(v int64) float64 { return float64(v) / 1024 }

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// WriteJSON writes rep as dir/bench-<timestamp>.json and returns the path.
func WriteJSON(dir string, rep *Report) (string, error) {
	return writeJSONAs(dir, "bench", rep.Started, rep)
}

// writeJSONAs writes v as dir/<prefix>-<timestamp>.json.
func writeJSONAs(dir, prefix string, started time.Time, v any) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, prefix+"-"+started.Format("20060102-150405")+".json")
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(data, '\n'), 0o644)
}

// printMetrics writes one condition's table: per metric one line per row,
// the metric's first line naming it, its second the row its ratios are to
// (also marked * in the row column).
func printMetrics(w io.Writer, rows []RowResult) {
	names := map[string]string{}
	for _, r := range rows {
		names[r.ID] = r.Name
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "metric\trow\tmedian\tmin-max\tspread\tvs better TLS\ttarget\t")
	for _, m := range Metrics {
		labels := []string{m.Label + " (" + m.Unit + ")"}
		for _, r := range rows {
			if against := r.Metrics[m.Key].Against; against != "" {
				labels = append(labels, "x "+names[against])
				break
			}
		}
		for _, r := range rows {
			s, ok := r.Metrics[m.Key]
			if !ok {
				continue
			}
			target := ""
			if s.Meets != nil {
				op := "<="
				if m.Higher {
					op = ">="
				}
				verdict := "MISSED"
				if *s.Meets {
					verdict = "met"
				}
				target = fmt.Sprintf("%s%.1fx %s", op, s.Target, verdict)
			}
			name := r.Name
			if r.ID == s.Against {
				name += " *"
			}
			label := ""
			if len(labels) > 0 {
				label, labels = labels[0], labels[1:]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s-%s\t%.0f%%\t%.2fx\t%s\t\n", label, name, fmtVal(s.Median), fmtVal(s.Min), fmtVal(s.Max),
				100*s.Spread, s.Ratio, target)
		}
	}
	tw.Flush()
}

// printCPU writes each row's CPU use during the single-sender bulk.
func printCPU(w io.Writer, rows []RowResult, cpus int, cond string) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nCPU use during bulk, 1 sender%s (%% of one core, median of the rounds; %d CPUs in all):", cond, cpus)
	for _, r := range rows {
		keys := make([]string, 0, len(r.BulkCPU))
		for k := range r.BulkCPU {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		total := 0.0
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", k, r.BulkCPU[k].Median))
			total += r.BulkCPU[k].Median
		}
		fmt.Fprintf(w, "\n  %-24s %s; sum %.0f%%", r.Name+":", strings.Join(parts, ", "), total)
	}
}
