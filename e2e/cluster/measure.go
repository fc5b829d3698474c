package cluster

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Measurements run inside the sending node (nwdriver:throughput/5 and
// nwdriver:rtt/3), so the figures are what Erlang processes see, without the
// harness's stdin/stdout round trips in them. Both set up the connection
// before timing. Compare figures only within one run on one machine.

const (
	// MeasureMessageSize is the size of each throughput message (1 MiB).
	MeasureMessageSize = 1 << 20
	// MeasureWindow is how many throughput messages are kept in flight.
	MeasureWindow = 8
)

// MeasureThroughput sends totalMiB messages of 1 MiB from a process on from
// to a sink process on to, keeping 8 unacknowledged, and returns the rate in
// MB/s (10^6 bytes per second).
func MeasureThroughput(ctx context.Context, from, to *Node, totalMiB int) (float64, error) {
	if totalMiB <= 0 {
		return 0, fmt.Errorf("cluster: MeasureThroughput: totalMiB %d", totalMiB)
	}
	expr := fmt.Sprintf("nwdriver:throughput(%s, %d, %d, %d, %d).",
		Atom(to.Name), totalMiB, MeasureMessageSize, MeasureWindow, timeoutMs(ctx))
	out, err := from.Eval(ctx, expr)
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`^\{([0-9]+),([0-9]+)\}$`).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("cluster: MeasureThroughput: unexpected result %s", out)
	}
	bytes, _ := strconv.ParseFloat(m[1], 64)
	ns, _ := strconv.ParseFloat(m[2], 64)
	if ns <= 0 {
		return 0, fmt.Errorf("cluster: MeasureThroughput: zero duration")
	}
	return bytes / (ns / 1e9) / 1e6, nil
}

// MeasureRTT makes n erpc:call(to, erlang, node, []) calls from from, one
// after another, and returns the median round trip.
func MeasureRTT(ctx context.Context, from, to *Node, n int) (time.Duration, error) {
	ds, err := MeasureRTTs(ctx, from, to, n)
	if err != nil {
		return 0, err
	}
	return Median(ds), nil
}

// MeasureRTTs is MeasureRTT returning every round trip, sorted, for callers
// that want percentiles.
func MeasureRTTs(ctx context.Context, from, to *Node, n int) ([]time.Duration, error) {
	if n <= 0 {
		return nil, fmt.Errorf("cluster: MeasureRTT: n %d", n)
	}
	out, err := from.Eval(ctx, fmt.Sprintf("nwdriver:rtt(%s, %d, %d).", Atom(to.Name), n, timeoutMs(ctx)))
	if err != nil {
		return nil, err
	}
	out = strings.TrimSuffix(strings.TrimPrefix(out, "["), "]")
	var ds []time.Duration
	for _, f := range strings.Split(out, ",") {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("cluster: MeasureRTT: unexpected result element %q", f)
		}
		ds = append(ds, time.Duration(v))
	}
	if len(ds) != n {
		return nil, fmt.Errorf("cluster: MeasureRTT: got %d samples, want %d", len(ds), n)
	}
	slices.Sort(ds)
	return ds, nil
}

// Median returns the median of ds (the mean of the middle two for an even
// count); 0 for none.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// timeoutMs turns ctx's deadline into the Erlang side's timeout, so a
// measurement over a dead link ends in the node too; 60 s without deadline.
func timeoutMs(ctx context.Context) int64 {
	if d, ok := ctx.Deadline(); ok {
		ms := time.Until(d).Milliseconds()
		if ms < 1 {
			ms = 1
		}
		return ms
	}
	return 60000
}
