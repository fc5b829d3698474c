package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// TestWANSmoke runs the real-network matrix with tiny workloads on plain
// distribution, nodewire userspace and nodewire over TCP 443 over three cells: the clean link, a
// black hole (every IPv4 frame dropped) and a lossy, slow, reordering link
// with short outages.
// It proves the harness works: figures are sane, both rows really cross the
// impaired link (their round trips include its delay, nftables dropped
// frames both ways, the wire saw no GSO frames), and a cell where nothing
// gets through is reported as failures, not numbers, without stopping the
// matrix; the TCP 443 row's streams are reset at each cell (wanstream.go)
// and it still crosses. It judges no speed.
func TestWANSmoke(t *testing.T) {
	cluster.Require(t)
	start := time.Now()
	sz := QuickWANSizes
	sz.Connect = 3 * time.Second
	slow := Cell{ID: "slowloss", Desc: "1% loss, 5 ms ±1 ms, 5% reordered, 2 ms of every 100 out", LossPermille: 10,
		Delay: 5 * time.Millisecond, Jitter: time.Millisecond, Reorder: 0.05, ReorderGap: time.Millisecond,
		Outage: 2 * time.Millisecond, OutageEvery: 100 * time.Millisecond}
	cells := []Cell{
		{ID: "blackhole", LossPermille: 1000, Desc: "every IPv4 frame dropped"},
		slow,
	}
	rep, err := RunWAN(t, WANConfig{Cells: cells, Rows: []string{"plain", "nwuser", "nwtcp"}, Sizes: sz, Rounds: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wan smoke run took %v", time.Since(start).Round(time.Millisecond))

	if len(rep.Cells) != 3 || rep.Cells[0].Cell.ID != CleanCell || rep.Cells[1].Cell.ID != "blackhole" || rep.Cells[2].Cell.ID != "slowloss" {
		t.Fatalf("cells %+v, want clean (added), blackhole, slowloss", rep.Cells)
	}
	if len(rep.Rows) != 3 || rep.Rows[0].ID != "plain" || rep.Rows[1].ID != "nwuser" || rep.Rows[2].ID != "nwtcp" {
		t.Fatalf("rows %+v, want plain, nwuser and nwtcp", rep.Rows)
	}
	for _, cr := range rep.Cells {
		if cr.Link.GSO != 0 {
			t.Errorf("cell %s: the wire carried %d GSO frames: loss is not per packet", cr.Cell.ID, cr.Link.GSO)
		}
		if cr.Link.FramesAB == 0 || cr.Link.FramesBA == 0 {
			t.Errorf("cell %s: no frames crossed the wire: %+v", cr.Cell.ID, cr.Link)
		}
	}

	clean := rep.Cells[0]
	for _, r := range rep.Rows {
		f := clean.Rows[r.ID]
		for name, o := range map[string]Outcome{"connect": f.ConnectMs, "goodput": f.GoodputMBps, "p50": f.P50Ms, "p99": f.P99Ms} {
			if !o.OK() || len(o.Fails) > 0 {
				t.Errorf("clean %s %s: %+v, want one measured round", r.ID, name, o)
				continue
			}
			if o.OfClean != 1 {
				t.Errorf("clean %s %s: ratio to clean %v, want 1", r.ID, name, o.OfClean)
			}
			if r.ID == "plain" && o.VsPlain != 1 {
				t.Errorf("clean plain %s: ratio to plain %v, want 1", name, o.VsPlain)
			}
		}
		if g := f.GoodputMBps.Median; !(g > 0.05 && g < 1e5) {
			t.Errorf("clean %s: goodput %v MB/s", r.ID, g)
		}
		if p50, p99 := f.P50Ms.Median, f.P99Ms.Median; !(p50 > 0.001 && p50 < 1000 && p99 >= p50) {
			t.Errorf("clean %s: erpc p50 %v ms, p99 %v ms", r.ID, p50, p99)
		}
	}

	hole := rep.Cells[1]
	if hole.Link.DroppedAB == 0 {
		t.Errorf("blackhole: nftables dropped nothing: %+v", hole.Link)
	}
	for _, r := range rep.Rows {
		f := hole.Rows[r.ID]
		for name, o := range map[string]Outcome{"connect": f.ConnectMs, "goodput": f.GoodputMBps, "p50": f.P50Ms, "p99": f.P99Ms} {
			if o.OK() {
				t.Errorf("blackhole %s %s: measured %v through a link that drops everything", r.ID, name, o.Rounds)
			}
			if o.Fails["unreachable"] != 1 || len(o.Fails) != 1 {
				t.Errorf("blackhole %s %s: failures %v, want one unreachable", r.ID, name, o.Fails)
			}
		}
	}

	lossy := rep.Cells[2]
	if lossy.Link.DroppedAB == 0 || lossy.Link.DroppedBA == 0 || lossy.Link.Reordered == 0 {
		t.Errorf("slowloss: the link dropped or reordered nothing: %+v", lossy.Link)
	}
	if lossy.Link.OutageAB == 0 || lossy.Link.OutageBA == 0 {
		t.Errorf("slowloss: the wire's outages dropped nothing one way: %+v", lossy.Link)
	}
	for _, r := range rep.Rows {
		f := lossy.Rows[r.ID]
		// Every figure is either measured or a named failure.
		for name, o := range map[string]Outcome{"connect": f.ConnectMs, "goodput": f.GoodputMBps, "p50": f.P50Ms, "p99": f.P99Ms} {
			if !o.OK() && len(o.Fails) != 1 {
				t.Errorf("slowloss %s %s: neither measured nor failed: %+v", r.ID, name, o)
			}
		}
		// A round trip crosses the wire twice: 2 × (5 ms - 1 ms) at least.
		if f.P50Ms.OK() && f.P50Ms.Median < 8 {
			t.Errorf("slowloss %s: erpc p50 %.3f ms, below the link's round trip: the row does not cross the wire", r.ID, f.P50Ms.Median)
		}
	}

	var table bytes.Buffer
	PrintWANTable(&table, rep)
	for _, want := range []string{"plain TCP dist", "nodewire userspace", "over TCP 443", "blackhole", "slowloss"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
	path, err := WriteWANJSON(t.TempDir(), rep)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back WANReport
	if err := json.Unmarshal(data, &back); err != nil || len(back.Cells) != 3 {
		t.Fatalf("JSON %s does not read back: %v", path, err)
	}
	t.Logf("\n%s", table.String())
}
