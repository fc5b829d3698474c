package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// TestBenchSmoke runs the whole harness with tiny workloads, one round,
// every row, the scale phases (idle and under load) and the profile phase, and checks that every figure
// is a sane number. It proves the harness works; it judges no speed.
func TestBenchSmoke(t *testing.T) {
	cluster.Require(t)
	start := time.Now()
	profDir := t.TempDir()
	rep, err := Run(t, Config{Sizes: QuickSizes, Rounds: 1, ScalePeers: []int{50}, LoadedScalePeers: []int{20}, ProfileDir: profDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("smoke run took %v", time.Since(start).Round(time.Millisecond))

	if len(rep.Rows) != len(Rows) {
		t.Fatalf("%d rows in the report, want %d", len(rep.Rows), len(Rows))
	}
	for i, r := range rep.Rows {
		if r.ID != Rows[i].ID {
			t.Errorf("row %d is %s, want %s", i, r.ID, Rows[i].ID)
		}
		for _, m := range Metrics {
			s, ok := r.Metrics[m.Key]
			switch {
			case !ok:
				t.Errorf("%s: no %s", r.ID, m.Key)
				continue
			case len(s.Rounds) != 1:
				t.Errorf("%s %s: %d rounds, want 1", r.ID, m.Key, len(s.Rounds))
			case !(s.Median > 0) || math.IsInf(s.Median, 0):
				t.Errorf("%s %s: median %v", r.ID, m.Key, s.Median)
			case !(s.Ratio > 0):
				t.Errorf("%s %s: ratio to the baseline %v", r.ID, m.Key, s.Ratio)
			}
			// Loose bounds: a broken measurement (units mixed up, a
			// timeout counted as a sample) lands far outside them.
			var lo, hi float64
			switch m.Unit {
			case "MB/s":
				lo, hi = 0.1, 1e6
			case "µs":
				lo, hi = 1, 5e6
			case "ms":
				lo, hi = 0.01, 5e3
			}
			if s.Median < lo || s.Median > hi {
				t.Errorf("%s %s: %v %s outside [%v, %v]", r.ID, m.Key, s.Median, m.Unit, lo, hi)
			}
		}
		ms := r.Metrics
		if ms["pingpong_p99_us"].Median < ms["pingpong_p50_us"].Median || ms["erpc_p99_us"].Median < ms["erpc_p50_us"].Median ||
			ms["cold_max_ms"].Median < ms["cold_p50_ms"].Median {
			t.Errorf("%s: a p99 or max below its p50: %+v", r.ID, ms)
		}
		if isBaseline(r.ID) {
			if !strings.HasPrefix(r.TLS, "tlsv1.") || !strings.Contains(r.TLS, "_") {
				t.Errorf("%s: negotiated %q, want a TLS version and a cipher suite", r.ID, r.TLS)
			}
			if r.ID == "tls" && !strings.HasPrefix(r.TLS, "tlsv1.3 ") {
				t.Errorf("TLS 1.3-only row negotiated %q", r.TLS)
			}
		}
		for _, m := range Metrics {
			s := ms[m.Key]
			if !isBaseline(s.Against) {
				t.Errorf("%s %s: ratio against %q, not a baseline row", r.ID, m.Key, s.Against)
			}
			// The row a ratio is to has ratio 1, and no baseline row beats
			// it: the better of the baseline rows.
			if r.ID == s.Against && s.Ratio != 1 {
				t.Errorf("%s %s: ratio to itself %v", r.ID, m.Key, s.Ratio)
			}
			if isBaseline(r.ID) && (m.Higher && s.Ratio > 1 || !m.Higher && s.Ratio < 1) {
				t.Errorf("%s %s: baseline row beats the row its ratio is to (%s): %v", r.ID, m.Key, s.Against, s.Ratio)
			}
		}
		if r.ID == "nwuser" || r.ID == "nwtun" {
			if len(r.Daemons) != 2 {
				t.Errorf("%s: %d daemons' memory, want 2", r.ID, len(r.Daemons))
			}
			for _, d := range r.Daemons {
				if d.PeakRSSKB < 1024 || d.PeakRSSKB > 4<<20 || d.HWMKB < d.PeakRSSKB {
					t.Errorf("%s: overlayd on %s: implausible memory %+v", r.ID, d.Host, d)
				}
			}
		}
	}
	if len(rep.Scale) != 1 || rep.Scale[0].Peers != 50 || rep.Scale[0].RSSKB < 1024 || !(rep.Scale[0].ReadyMs > 0) || !(rep.Scale[0].StatusMs > 0) ||
		!(rep.Scale[0].ReadyCPUMs > 0) || !(rep.Scale[0].AddPeerCPUMs > 0) {
		t.Errorf("scale: %+v", rep.Scale)
	}
	if len(rep.LoadedScale) != 1 || len(rep.LoadedScale[0].Daemons) != 2 || !(rep.LoadedScale[0].BulkMBps > 0) {
		t.Errorf("scale under load: %+v", rep.LoadedScale)
	} else {
		for _, d := range rep.LoadedScale[0].Daemons {
			if d.PeakRSSKB < 1024 || d.PeakRSSKB > 4<<20 {
				t.Errorf("scale under load: overlayd on %s: implausible memory %+v", d.Host, d)
			}
		}
	}
	if len(rep.Profiles) != 2 {
		t.Errorf("%d profiles, want sender and receiver", len(rep.Profiles))
	}
	for _, p := range rep.Profiles {
		if !strings.Contains(p.Top, "flat%") {
			t.Errorf("%s profile: no pprof -top table:\n%s", p.Role, p.Top)
		}
		if fi, err := os.Stat(p.Mem); err != nil || fi.Size() == 0 {
			t.Errorf("%s heap profile: %v", p.Role, err)
		}
		if top, err := os.ReadFile(p.MemTopFile); err != nil || !strings.Contains(string(top), "alloc_space") {
			t.Errorf("%s heap profile top: %v:\n%s", p.Role, err, top)
		}
		if p.Row != "nwuser" || p.PeakRSSKB < 1024 || p.PeakRSSKB > 4<<20 {
			t.Errorf("%s profile: row %q, implausible peak VmRSS %d KiB", p.Role, p.Row, p.PeakRSSKB)
		}
	}

	var table bytes.Buffer
	PrintTable(&table, rep)
	for _, r := range Rows {
		if !strings.Contains(table.String(), r.Name) {
			t.Errorf("table lacks row %q:\n%s", r.Name, table.String())
		}
	}
	path, err := WriteJSON(t.TempDir(), rep)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil || len(back.Rows) != len(rep.Rows) {
		t.Fatalf("JSON %s does not read back: %v", path, err)
	}
	t.Logf("\n%s", table.String())
}

// TestTLSRowsVerifyPeers makes sure each baseline is the secure setup it
// claims to be: a node whose certificate comes from another CA cannot
// connect to a node of the TLS row, while the row's own nodes can.
func TestTLSRowsVerifyPeers(t *testing.T) {
	cluster.Require(t)
	for _, row := range Rows {
		if !row.Baseline {
			continue
		}
		t.Run(row.ID, func(t *testing.T) {
			c := cluster.New(t, "benchtls")
			erlArgs, err := compileBenchwork(c.Dir())
			if err != nil {
				t.Fatal(err)
			}
			pair, err := row.Setup(&Env{C: c, T: t, Dir: c.Dir(), ErlArgs: erlArgs}, row.ID)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if ok, err := pair.A.Ping(ctx, pair.B.Name); err != nil || !ok {
				t.Fatalf("row's own nodes: pong %v, %v", ok, err)
			}
			negotiated, err := tlsNegotiated(pair)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s negotiated %s", row.ID, negotiated)

			other, err := newTLSCA(filepath.Join(c.Dir(), "other-ca"))
			if err != nil {
				t.Fatal(err)
			}
			h := c.AddHost("intruder")
			if _, err := h.StartEPMD(nil); err != nil {
				t.Fatal(err)
			}
			opt, err := other.optFile(h.Name, net.IP(h.Addr.AsSlice()), nil)
			if err != nil {
				t.Fatal(err)
			}
			n, err := h.StartNode(cluster.NodeOptions{Name: "bench@" + h.Addr.String(),
				Args: append(append([]string{}, erlArgs...), "-proto_dist", "inet_tls", "-ssl_dist_optfile", opt)})
			if err != nil {
				t.Fatal(err)
			}
			for _, pr := range []struct{ from, to *cluster.Node }{{n, pair.B}, {pair.B, n}} {
				if ok, err := pr.from.Ping(ctx, pr.to.Name); err != nil || ok {
					t.Errorf("%s -> %s with certificates of different CAs: pong %v, %v; want pang", pr.from.Name, pr.to.Name, ok, err)
				}
			}
		})
	}
}
