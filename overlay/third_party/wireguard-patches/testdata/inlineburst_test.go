/* SPDX-License-Identifier: MIT
 *
 * nodewire's test of patch 0007 (SetInlineBurst), run by upstream-test.sh
 * next to upstream's device tests.
 */

package device

import (
	"testing"
	"time"
)

// TestInlineBurst checks which batches of a sequence may go inline: with a
// burst of n, a batch is inline when the n-th batch before it came at
// least inlineMinGap earlier.
func TestInlineBurst(t *testing.T) {
	us := func(n int) time.Duration { return time.Duration(n) * time.Microsecond }
	for _, tc := range []struct {
		name  string
		burst int32
		at    []int // µs since start, after a first batch long ago
		want  []bool
	}{
		{"one: ACK then reply", 1, []int{1000, 1020, 1100, 1120}, []bool{true, false, true, false}},
		{"two: ACK then reply", 2, []int{1000, 1020, 1100, 1120}, []bool{true, true, true, true}},
		{"two: a stream", 2, []int{1000, 1010, 1020, 1030, 1040}, []bool{true, true, false, false, false}},
		{"two: after a stream", 2, []int{1000, 1010, 1020, 1080, 1090}, []bool{true, true, false, true, true}},
		{"zero is one", 0, []int{1000, 1020}, []bool{true, false}},
		{"four", 4, []int{1000, 1001, 1002, 1003, 1004}, []bool{true, true, true, true, false}},
	} {
		var last [inlineMaxBurst]time.Duration
		lone(&last, tc.burst, 0)
		for i, at := range tc.at {
			if got := lone(&last, tc.burst, us(at)); got != tc.want[i] {
				t.Errorf("%s: batch %d at %d µs: inline %v, want %v", tc.name, i, at, got, tc.want[i])
			}
		}
	}
}

func TestSetInlineBurstClamps(t *testing.T) {
	var d Device
	for _, tc := range []struct{ set, want int32 }{{-1, 1}, {0, 1}, {1, 1}, {2, 2}, {4, 4}, {9, inlineMaxBurst}} {
		d.SetInlineBurst(int(tc.set))
		if got := d.inlineBurst.Load(); got != tc.want {
			t.Errorf("SetInlineBurst(%d): %d, want %d", tc.set, got, tc.want)
		}
	}
}
