package tcp

import (
	"math/rand"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
)

// TestSACKCursorMatchesScoreboard checks nodewire's sackCursor against the
// scoreboard it stands in for: on random scoreboards (merged, trimmed, and
// near sequence-number wrap), every range asked in ascending order, as
// SetPipe and detectLoss ask, gets IsSACKED's and IsRangeLost's answer.
func TestSACKCursorMatchesScoreboard(t *testing.T) {
	const smss = 1000
	rng := rand.New(rand.NewSource(1))
	var c sackCursor
	for iter := 0; iter < 500; iter++ {
		iss := seqnum.Value(rng.Uint32())
		sb := NewSACKScoreboard(smss, iss)
		span := 5 + rng.Intn(200)
		for range rng.Intn(40) {
			start := iss.Add(seqnum.Size(rng.Intn(span) * smss / 2))
			sb.Insert(header.SACKBlock{Start: start, End: start.Add(seqnum.Size(1 + rng.Intn(4*smss)))})
		}
		if rng.Intn(3) == 0 {
			sb.Delete(iss.Add(seqnum.Size(rng.Intn(span * smss / 2))))
		}
		sb.resetCursor(&c)
		step := []int{1, 7, smss / 2, smss}[rng.Intn(4)]
		for off := 0; off < (span+8)*smss/2; off += step {
			r := header.SACKBlock{Start: iss.Add(seqnum.Size(off))}
			r.End = r.Start.Add(seqnum.Size(1 + rng.Intn(2*smss)))
			if got, want := c.isSACKED(r), sb.IsSACKED(r); got != want {
				t.Fatalf("iter %d: isSACKED(%v) = %v, scoreboard says %v: %v", iter, r, got, want, sb)
			}
			if got, want := c.isRangeLost(r), sb.IsRangeLost(r); got != want {
				t.Fatalf("iter %d: isRangeLost(%v) = %v, scoreboard says %v: %v", iter, r, got, want, sb)
			}
		}
	}
}
