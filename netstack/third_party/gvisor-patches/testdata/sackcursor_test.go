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
// SetPipe and detectLoss ask, gets IsSACKED's and IsRangeLost's answer,
// and uniform's answer for a range holds for each SMSS piece of it.
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
		// uniform's answer for a whole range is each piece's.
		for range 50 {
			start := iss.Add(seqnum.Size(rng.Intn((span + 8) * smss / 2)))
			end := start.Add(seqnum.Size(1 + rng.Intn(8*smss)))
			n, sacked, lost, ok := c.uniform(start, end, smss)
			if !ok {
				continue
			}
			pieces := 0
			for p := start; p.LessThan(end); p = p.Add(smss) {
				r := header.SACKBlock{Start: p, End: p.Add(smss)}
				if end.LessThan(r.End) {
					r.End = end
				}
				pieces++
				if sb.IsSACKED(r) != sacked || sb.IsRangeLost(r) != lost {
					t.Fatalf("iter %d: uniform(%v, %v) = sacked %v lost %v, but piece %v: %v %v: %v", iter, start, end, sacked, lost, r, sb.IsSACKED(r), sb.IsRangeLost(r), sb)
				}
			}
			if pieces != n {
				t.Fatalf("iter %d: uniform(%v, %v) counts %d pieces, want %d", iter, start, end, n, pieces)
			}
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
