package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// failText says how a figure failed: "lost", or "lost 1/2, timeout 1/2"
// over the rounds.
func failText(o Outcome) string {
	keys := make([]string, 0, len(o.Fails))
	total := len(o.Rounds)
	for k, n := range o.Fails {
		keys = append(keys, k)
		total += n
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		if len(keys) == 1 && len(o.Rounds) == 0 {
			return k
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d", k, o.Fails[k], total))
	}
	return strings.Join(parts, ", ")
}

// cellText is a figure for the table: the median (with the failed rounds
// in brackets if some failed), or only how it failed.
func cellText(o Outcome) string {
	switch {
	case !o.OK() && len(o.Fails) > 0:
		return failText(o)
	case !o.OK():
		return "-"
	case len(o.Fails) > 0:
		return fmt3(o.Median) + " (" + failText(o) + ")"
	}
	return fmt3(o.Median)
}

// fmt3 is fmtVal with three significant digits below 1 too (round trips
// of a tenth of a millisecond).
func fmt3(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.3f", v)
	}
	return fmtVal(v)
}

func ratioText(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// PrintWANTable writes the matrix for people: per cell, one line per row.
func PrintWANTable(w io.Writer, rep *WANReport) {
	fmt.Fprintf(w, "nodewire wan %s: %s; %d round(s) per cell, rows interleaved; %s\n",
		rep.Started.Format("2006-01-02 15:04:05"), rep.Machine, rep.Rounds, rep.Duration)
	sz := rep.Sizes
	fmt.Fprintf(w, "per row and cell: a fresh connection, erpc:calls (%d-%d, %v-%v), a %v bulk transfer of %d KiB messages, %d in flight\n",
		sz.MinCalls, sz.MaxCalls, sz.MinTime, sz.MaxTime, sz.BulkDuration, sz.MessageSize>>10, sz.Window)
	fmt.Fprintf(w, "kernel TCP (plain and TLS distribution, TUN mode's inner TCP): congestion control %s; userspace mode: gVisor's bbrfloor (Reno with BBR v1's window as its loss floor, patch 0010)\n", cmp.Or(rep.KernelCC, "?"))
	fmt.Fprintf(w, "goodput: bytes acknowledged by the receiving process per second; /clean: the row's figure over its own clean-link figure;\n")
	fmt.Fprintf(w, "/plain: over plain distribution's in the same cell. A failed figure says how (lost, timeout, unreachable, stalled).\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "cell\trow\tconnect ms\tgoodput MB/s\t/clean\t/plain\terpc p50 ms\t/clean\t/plain\terpc p99 ms\t/clean\t/plain\t")
	for _, cr := range rep.Cells {
		label := cr.Cell.ID
		for _, r := range rep.Rows {
			f, ok := cr.Rows[r.ID]
			if !ok {
				continue
			}
			g := cellText(f.GoodputMBps)
			if f.Undrained > 0 {
				g += "*"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", label, r.Name, cellText(f.ConnectMs),
				g, ratioText(f.GoodputMBps.OfClean), ratioText(f.GoodputMBps.VsPlain),
				cellText(f.P50Ms), ratioText(f.P50Ms.OfClean), ratioText(f.P50Ms.VsPlain),
				cellText(f.P99Ms), ratioText(f.P99Ms.OfClean), ratioText(f.P99Ms.VsPlain))
			label = ""
		}
	}
	tw.Flush()
	for _, cr := range rep.Cells {
		if slices.ContainsFunc(rep.Rows, func(r WANRow) bool { return cr.Rows[r.ID].Undrained > 0 }) {
			fmt.Fprintln(w, "\n* the bulk window had not drained when the row's turn ended (in some round): the connection was dropped")
			break
		}
	}
	fmt.Fprintln(w, "\ncells (every row's hosts on either side of one link: nwattack wire for delay and outages, nftables for loss):")
	for _, cr := range rep.Cells {
		l := cr.Link
		drop := ""
		if l.DroppedAB+l.DroppedBA > 0 {
			drop = fmt.Sprintf(", dropped %d a->b (%.2f%%) and %d b->a (%.2f%%)", l.DroppedAB, pct(l.DroppedAB, l.FramesAB+l.DroppedAB),
				l.DroppedBA, pct(l.DroppedBA, l.FramesBA+l.DroppedBA))
		}
		if l.OutageAB+l.OutageBA > 0 {
			drop += fmt.Sprintf(", lost in outages %d a->b (%.2f%%) and %d b->a (%.2f%%)", l.OutageAB, pct(l.OutageAB, l.FramesAB+l.DroppedAB+l.OutageAB),
				l.OutageBA, pct(l.OutageBA, l.FramesBA+l.DroppedBA+l.OutageBA))
		}
		extra := ""
		if l.Reordered > 0 {
			extra += fmt.Sprintf(", %d reordered", l.Reordered)
		}
		if l.TailDrops > 0 || l.WriteErrs > 0 || l.RxDrops > 0 {
			extra += fmt.Sprintf(", NOT ASKED FOR: %d frames the wire read too late, %d queue drops, %d write errors", l.RxDrops, l.TailDrops, l.WriteErrs)
		}
		if l.Late > 0 {
			extra += fmt.Sprintf(", NOT ASKED FOR: %d frames left the wire over 2 ms late (worst %.1f ms): the wire was short of CPU", l.Late, float64(l.LateMaxUs)/1000)
		}
		if l.GSO > 0 {
			extra += fmt.Sprintf(", WARNING %d frames longer than the MTU (GSO): their loss is not per packet", l.GSO)
		}
		fmt.Fprintf(w, "  %-9s %s: %d frames a->b, %d b->a%s%s\n", cr.Cell.ID, cr.Cell.Desc, l.FramesAB, l.FramesBA, drop, extra)
	}
}

func pct(n, of uint64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// WriteWANJSON writes rep as dir/wan-<timestamp>.json and returns the path.
func WriteWANJSON(dir string, rep *WANReport) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "wan-"+rep.Started.Format("20060102-150405")+".json")
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(data, '\n'), 0o644)
}
