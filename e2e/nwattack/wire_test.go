package main

import (
	"testing"
	"time"
)

// TestOutage checks the wire's outage clock: down for the first -outage of
// every -outage-every, counted from the start, and never without -outage.
func TestOutage(t *testing.T) {
	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	im := impairment{outage: 10 * time.Millisecond, outageEvery: 200 * time.Millisecond, start: start}
	for _, tc := range []struct {
		at   time.Duration
		down bool
	}{
		{0, true},
		{9 * time.Millisecond, true},
		{10 * time.Millisecond, false},
		{199 * time.Millisecond, false},
		{200 * time.Millisecond, true},
		{1209 * time.Millisecond, true},
		{1210 * time.Millisecond, false},
	} {
		if got := im.out(start.Add(tc.at)); got != tc.down {
			t.Errorf("%v after the start: down %v, want %v", tc.at, got, tc.down)
		}
	}
	if (impairment{outageEvery: time.Second, start: start}).out(start) {
		t.Error("no -outage: down at the start")
	}
}
