package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// WireGuard over TCP 443 (row nwtcp) carries every turn's connections in
// one long-lived TLS stream, while the other rows connect afresh in each
// turn. Left alone, that stream would cross every cell with the state its
// kernel TCP learnt in the cells before: above all the minimum round trip,
// which Linux keeps for 5 minutes (tcp_min_rtt_wlen) and from which RACK
// sizes its reordering window (min_rtt/4). Measured: a stream that came
// from the clean cell (min_rtt 10 µs) into delay20 (40 ms, 1% of frames
// 2 ms late) retransmitted 69319 segments in one 4 s turn that nftables
// never dropped (the receiver counted them all as duplicates: dsack_dups
// 68755), and its turn's goodput was whatever was left. A stream on a real
// path learns that path's minimum, so each cell starts with fresh streams,
// as a site's would be on its path.

// resetStreams closes the TCP 443 streams of a row's two hosts (ss -K, as
// a reset would) and, if there were any, waits up to wait until the overlay
// carries distribution again (its next datagram redials the stream). A cell
// that lets nothing through is no error here: the row's turn will say so.
func resetStreams(p *Pair, wait time.Duration, logf func(string, ...any)) (bool, error) {
	killed := false
	for _, h := range []*cluster.Host{p.A.Host, p.B.Host} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", h.NS, "ss", "-K", "-tnH", "state", "established",
			"( sport = :443 or dport = :443 )").CombinedOutput()
		cancel()
		if err != nil {
			return killed, fmt.Errorf("%s: ss -K: %v: %s", h.NS, err, strings.TrimSpace(string(out)))
		}
		killed = killed || strings.TrimSpace(string(out)) != ""
	}
	if !killed {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := cluster.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		ok, _ := p.A.Ping(ctx, p.B.Name)
		return ok, nil
	})
	if err != nil {
		logf("%s -> %s: no pong within %v of the streams' reset: %v", p.A.Name, p.B.Name, wait, err)
	}
	return true, nil
}
