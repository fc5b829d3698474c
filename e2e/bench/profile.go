package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Profile is one overlayd's CPU profile under the bulk workload.
type Profile struct {
	Row       string  `json:"row"`  // the nodewire row profiled
	Role      string  `json:"role"` // sender or receiver
	Host      string  `json:"host"`
	CPU       string  `json:"cpu_profile"`
	Mem       string  `json:"mem_profile"`
	MBps      float64 `json:"bulk_mbps"`
	PeakRSSKB int64   `json:"peak_rss_kb"` // VmRSS, sampled during bulk
	Top       string  `json:"top"`         // go tool pprof -top, first entries
	TopFile   string  `json:"top_file"`
	// MemTopFile has the heap profile's first entries by bytes allocated
	// (-sample_index=alloc_space): what the run went through, not what
	// was live at exit.
	MemTopFile string `json:"mem_top_file"`
}

// profileBulk sets up one more nodewire row (rowID: nwuser or nwtun) whose
// daemons run with --cpuprofile and --memprofile, runs the single-sender
// bulk workload once while sampling their resident memory, stops the
// daemons (they write the profiles at exit) and keeps the top entries of
// each profile.
func profileBulk(e *Env, rowID, dir string, sz Sizes, logf func(string, ...any)) ([]Profile, error) {
	row, err := rowByID(rowID)
	if err != nil {
		return nil, err
	}
	if !row.Judged {
		return nil, fmt.Errorf("row %s runs no overlayd", rowID)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	stamp := time.Now().Format("20060102-150405")
	pe := *e
	pe.DaemonArgs = func(host string) []string {
		base := filepath.Join(dir, stamp+"-"+host)
		return []string{"--cpuprofile", base + ".cpu.pprof", "--memprofile", base + ".mem.pprof"}
	}
	pair, err := row.Setup(&pe, "prof")
	if err != nil {
		return nil, err
	}
	samplers := map[string]*rssSampler{}
	for host, d := range pair.Daemons {
		samplers[host] = startRSSSampler(d.Pid(), 100*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sz.BulkDuration+2*time.Minute)
	mbps, err := stream(ctx, pair.A, pair.B, 1, sz.MessageSize, sz.Window, sz.BulkDuration)
	cancel()
	peaks := map[string]int64{}
	for host, s := range samplers {
		peaks[host] = s.stop().PeakRSSKB
	}
	if err != nil {
		return nil, fmt.Errorf("bulk: %w", err)
	}
	logf("profile: %s: bulk %.0f MB/s with profiling on, daemons' peak VmRSS %d KiB (profa) and %d KiB (profb)", rowID, mbps, peaks["profa"], peaks["profb"])
	// Nodes first, so the daemons stop with no traffic left; each daemon
	// writes its profiles when SIGTERM ends it.
	for _, n := range []interface{ Stop() error }{pair.A, pair.B} {
		if err := n.Stop(); err != nil {
			return nil, err
		}
	}
	var out []Profile
	for _, role := range []struct{ role, host string }{{"sender", "profa"}, {"receiver", "profb"}} {
		d := pair.Daemons[role.host]
		if err := d.Stop(); err != nil {
			return nil, err
		}
		base := filepath.Join(dir, stamp+"-"+role.host)
		p := Profile{Row: rowID, Role: role.role, Host: role.host, CPU: base + ".cpu.pprof", Mem: base + ".mem.pprof", MBps: mbps,
			PeakRSSKB: peaks[role.host], TopFile: base + ".cpu.top.txt", MemTopFile: base + ".mem.top.txt"}
		top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=20", p.CPU).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go tool pprof %s: %v: %s", p.CPU, err, top)
		}
		p.Top = strings.TrimSpace(string(top))
		if err := os.WriteFile(p.TopFile, top, 0o644); err != nil {
			return nil, err
		}
		memTop, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=20", "-sample_index=alloc_space", p.Mem).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go tool pprof %s: %v: %s", p.Mem, err, memTop)
		}
		if err := os.WriteFile(p.MemTopFile, memTop, 0o644); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
