package main

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// benchworkSrc is compiled with erlc into the run's dir and loaded on every
// node with -pa.
//
//go:embed benchwork.erl
var benchworkSrc []byte

// compileBenchwork writes and compiles benchwork.erl into dir/ebin and
// returns the erl arguments that load it, and a net_setuptime of 30 s: the
// default 7 s bounds a connection's whole set-up, and on a machine loaded
// far beyond its CPUs (load 18 on 2 vCPUs, TestBenchSmoke beside other
// tests) inet_tls_dist's first connection, which loads and starts most of
// ssl, took longer and returned pang. The benchmarks time set-ups; they do
// not want them cut off.
func compileBenchwork(dir string) ([]string, error) {
	ebin := filepath.Join(dir, "bench-ebin")
	if err := os.MkdirAll(ebin, 0o755); err != nil {
		return nil, err
	}
	src := filepath.Join(ebin, "benchwork.erl")
	if err := os.WriteFile(src, benchworkSrc, 0o644); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "erlc", "-o", ebin, src).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("erlc benchwork.erl: %v: %s", err, out)
	}
	return []string{"-pa", ebin, "-kernel", "net_setuptime", "30"}, nil
}

// Workload sizes. Quick (the smoke test) shrinks all of them.
type Sizes struct {
	BulkDuration   time.Duration // how long each stream workload sends
	MessageSize    int           // bytes per stream message
	Window         int           // messages in flight per sender
	Senders        int           // senders of the parallel workload
	ParallelWindow int           // messages in flight per parallel sender
	PingPongs      int           // timed 64-byte round trips
	PingPongSize   int
	Calls          int // timed erpc:call round trips
	ColdSamples    int // cold connection setups
}

// DefaultSizes is what `make bench` runs: the workloads.
var DefaultSizes = Sizes{
	BulkDuration: 5 * time.Second, MessageSize: 1 << 20, Window: 8,
	Senders: 8, ParallelWindow: 2,
	PingPongs: 2000, PingPongSize: 64, Calls: 2000, ColdSamples: 10,
}

// QuickSizes is the smoke test's: every workload runs, briefly.
var QuickSizes = Sizes{
	BulkDuration: 300 * time.Millisecond, MessageSize: 64 << 10, Window: 8,
	Senders: 8, ParallelWindow: 2,
	PingPongs: 50, PingPongSize: 64, Calls: 50, ColdSamples: 2,
}

func erlTimeout(ctx context.Context) int64 {
	if d, ok := ctx.Deadline(); ok {
		return max(1, time.Until(d).Milliseconds())
	}
	return 60000
}

var pairRE = regexp.MustCompile(`^\{([0-9]+),([0-9]+)\}$`)

// stream runs benchwork:stream and returns MB/s (10^6 bytes per second).
func stream(ctx context.Context, a, b *cluster.Node, senders, size, window int, dur time.Duration) (float64, error) {
	expr := fmt.Sprintf("benchwork:stream(%s, %d, %d, %d, %d, %d).", cluster.Atom(b.Name), senders, size, window, dur.Milliseconds(), min(erlTimeout(ctx), 60000))
	out, err := a.Eval(ctx, expr)
	if err != nil {
		return 0, err
	}
	m := pairRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("benchwork:stream: unexpected result %s", out)
	}
	bytes, _ := strconv.ParseFloat(m[1], 64)
	ns, _ := strconv.ParseFloat(m[2], 64)
	if ns <= 0 || bytes <= 0 {
		return 0, fmt.Errorf("benchwork:stream: %s bytes in %s ns", m[1], m[2])
	}
	return bytes / (ns / 1e9) / 1e6, nil
}

// durations parses a ~w list of nanoseconds.
func durations(out string, want int) ([]time.Duration, error) {
	out = strings.TrimSuffix(strings.TrimPrefix(out, "["), "]")
	var ds []time.Duration
	for _, f := range strings.Split(out, ",") {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("unexpected result element %q", f)
		}
		ds = append(ds, time.Duration(v))
	}
	if len(ds) != want {
		return nil, fmt.Errorf("got %d samples, want %d", len(ds), want)
	}
	slices.Sort(ds)
	return ds, nil
}

func pingpong(ctx context.Context, a, b *cluster.Node, size, n int) ([]time.Duration, error) {
	out, err := a.Eval(ctx, fmt.Sprintf("benchwork:pingpong(%s, %d, %d, %d).", cluster.Atom(b.Name), size, n, min(erlTimeout(ctx), 60000)))
	if err != nil {
		return nil, err
	}
	return durations(out, n)
}

func erpcRTT(ctx context.Context, a, b *cluster.Node, n int) ([]time.Duration, error) {
	out, err := a.Eval(ctx, fmt.Sprintf("benchwork:erpc_rtt(%s, %d, %d).", cluster.Atom(b.Name), n, min(erlTimeout(ctx), 60000)))
	if err != nil {
		return nil, err
	}
	return durations(out, n)
}

// coldConnect measures one fresh connection: it drops the connection on
// both sides, waits until neither node has one to the other, then times a's
// first net_adm:ping (EPMD lookup, connect, handshake). If something
// reconnects the nodes in between (a process on b sending to a, say), it
// starts over.
// retries counts the starts over.
func coldConnect(ctx context.Context, a, b *cluster.Node) (d time.Duration, retries int, err error) {
	out, retries, err := coldRun(ctx, a, b, "cold")
	if err != nil {
		return 0, retries, err
	}
	ns, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		return 0, retries, fmt.Errorf("benchwork:cold: unexpected result %s", out)
	}
	return time.Duration(ns), retries, nil
}

// coldRun drops a's and b's connection as coldConnect describes and runs
// benchwork:fn(b, ...) on a, returning its result.
func coldRun(ctx context.Context, a, b *cluster.Node, fn string) (out string, retries int, err error) {
	aAtom, bAtom := cluster.Atom(a.Name), cluster.Atom(b.Name)
	for ; retries < 10; retries++ {
		// b's side too: a's disconnect alone leaves b free to dial a
		// again at once, and b is what a connects to next.
		for _, d := range []struct {
			n     *cluster.Node
			other string
		}{{a, bAtom}, {b, aAtom}} {
			if _, err := d.n.Eval(ctx, fmt.Sprintf("benchwork:disconnect(%s, 10000).", d.other)); err != nil {
				return "", retries, err
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = cluster.Poll(wctx, 5*time.Millisecond, func() (bool, error) {
			for _, d := range []struct {
				n     *cluster.Node
				other string
			}{{a, bAtom}, {b, aAtom}} {
				out, err := d.n.Eval(wctx, fmt.Sprintf("benchwork:connected(%s).", d.other))
				if err != nil || out != "false" {
					return false, nil
				}
			}
			return true, nil
		})
		cancel()
		if err != nil {
			continue // reconnected meanwhile: drop it again
		}
		expr := fmt.Sprintf("benchwork:%s(%s, %d).", fn, bAtom, erlTimeout(ctx))
		out, err := a.Eval(ctx, expr)
		if err != nil {
			return "", retries, err
		}
		if out == "already_connected" {
			continue
		}
		return out, retries, nil
	}
	return "", retries, fmt.Errorf("%s and %s kept reconnecting; no cold sample", a.Name, b.Name)
}
