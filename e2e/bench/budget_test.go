package main

import (
	"testing"
	"time"

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
