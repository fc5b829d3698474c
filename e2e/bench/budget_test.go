package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
	"github.com/nodewire/nodewire/netstack/hoptrace"
)

// TestFollowResyncs checks that a message missing a hop is dropped without
// taking the next message's marks, and that pure ACKs are not followed.
func TestFollowResyncs(t *testing.T) {
	path := []hoptrace.Hop{hoptrace.TUNRead, hoptrace.UDPSend, hoptrace.UDPRecv, hoptrace.TUNWrite}
	var snd, rcv []hopMark
	for k := range int64(4) {
		base := k * 1000
		snd = append(snd, hopMark{hoptrace.TUNRead, base, 150}, hopMark{hoptrace.UDPSend, base + 10, 180},
			hopMark{hoptrace.UDPSend, base + 15, 96}) // a pure ACK
		rcv = append(rcv, hopMark{hoptrace.UDPRecv, base + 40, 180})
		if k != 1 { // message 1's decrypted packet is lost
			rcv = append(rcv, hopMark{hoptrace.TUNWrite, base + 45, 150})
		}
	}
	got := follow(snd, rcv, path)
	if len(got) != 3 {
		t.Fatalf("%d messages followed, want 3: %v", len(got), got)
	}
	for _, legs := range got {
		if legs[0] != 10 || legs[1] != 30 || legs[2] != 5*time.Nanosecond {
			t.Errorf("legs %v, want [10ns 30ns 5ns]", legs)
		}
	}
}

// TestBudgetSmoke runs the latency budget briefly (idle only) and checks
// that every hop of both modes was timed in both directions. It judges no
// speed.
func TestBudgetSmoke(t *testing.T) {
	cluster.Require(t)
	rep, err := Budget(t, 100, false, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Modes) != 2 {
		t.Fatalf("%d budget tables, want userspace and tun", len(rep.Modes))
	}
	for _, tab := range rep.Modes {
		wantLegs := map[string]int{"userspace": 6, "tun": 3}[tab.Mode]
		if len(tab.Legs) != wantLegs || !(tab.RTTp50us > 0) {
			t.Errorf("%s: %d legs (want %d), rtt %v", tab.Mode, len(tab.Legs), wantLegs, tab.RTTp50us)
		}
		for dir, n := range tab.Samples {
			// Most of the 100 messages: a few may lose a mark.
			if n < 50 {
				t.Errorf("%s %s: %d messages followed of 100", tab.Mode, dir, n)
			}
		}
		for _, l := range tab.Legs {
			for dir, v := range l.P50us {
				if !(v > 0) || v > 50000 {
					t.Errorf("%s %s %s -> %s: %v µs", tab.Mode, dir, l.From, l.To, v)
				}
			}
		}
	}
	var out bytes.Buffer
	PrintBudget(&out, rep)
	t.Logf("\n%s", out.String())
}
