package main

import (
	"math"
	"slices"
	"time"
)

// Metric is one figure of the table.
type Metric struct {
	Key    string // JSON name
	Label  string
	Unit   string
	Higher bool // higher is better (throughput); else lower is (latency)
	// Target is the bound on a judged row's ratio to the baseline:
	// at least Target when Higher, at most Target otherwise. 0: none.
	Target float64
	// BusyTarget, if set, replaces Target on the busy host (issue 12: bulk
	// at least 2.0x TLS idle, where TLS's vCPU wake-ups flatter nodewire,
	// and at least 1.0x busy).
	BusyTarget float64
}

// Metrics in table order.
var Metrics = []Metric{
	{Key: "bulk_mbps", Label: "bulk, 1 sender", Unit: "MB/s", Higher: true, Target: 2.0, BusyTarget: 1.0},
	{Key: "parallel_mbps", Label: "bulk, 8 senders", Unit: "MB/s", Higher: true},
	{Key: "pingpong_p50_us", Label: "64 B ping-pong p50", Unit: "µs", Target: 1.0},
	{Key: "pingpong_p99_us", Label: "64 B ping-pong p99", Unit: "µs", Target: 1.2},
	{Key: "erpc_p50_us", Label: "erpc:call p50", Unit: "µs", Target: 1.0},
	{Key: "erpc_p99_us", Label: "erpc:call p99", Unit: "µs", Target: 1.2},
	{Key: "cold_p50_ms", Label: "cold connect p50", Unit: "ms", Target: 0.5},
	{Key: "cold_max_ms", Label: "cold connect max", Unit: "ms"},
}

// Stat summarises one metric of one row over the rounds.
type Stat struct {
	Rounds []float64 `json:"rounds"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	// Spread is (max-min)/median: how noisy the rounds were.
	Spread float64 `json:"spread"`
	// Ratio is Median over the better baseline row's Median (0 without
	// one); Against is that row's ID.
	Ratio   float64 `json:"ratio_to_baseline,omitempty"`
	Against string  `json:"ratio_against,omitempty"`
	// Meets is set on judged rows for metrics with a target; Target is
	// the bound it was judged against (per condition, see BusyTarget).
	Meets  *bool   `json:"meets_target,omitempty"`
	Target float64 `json:"target,omitempty"`
}

func summarize(rounds []float64) Stat {
	s := Stat{Rounds: rounds}
	if len(rounds) == 0 {
		return s
	}
	sorted := slices.Clone(rounds)
	slices.Sort(sorted)
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	s.Median = medianF(sorted)
	if s.Median != 0 {
		s.Spread = (s.Max - s.Min) / s.Median
	}
	return s
}

func medianF(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
