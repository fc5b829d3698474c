package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nodewire/nodewire/overlay/control"
)

// cmdPing implements `overlayctl ping [--control SOCKET] [-c N] NAME`: the
// local overlayd pings peer NAME from its overlay address, one control
// request per echo, and the replies are printed as they come, like ping.
func cmdPing(e *env, args []string) error {
	fs := newFlags(e, "ping", "[--control SOCKET] [-c N] [-i D] [--timeout D] NAME",
		`Asks the local overlayd (userspace mode) to send ICMP echo requests from its
overlay address to peer NAME, through the overlay, and prints the round trip
of each reply, like ping. Fails in one line when the policy does not let this
host ping NAME (with the deciding rule or default), when no reply comes, and
in TUN mode, where the system's ping works.

A userspace host answers ping from a peer that may reach it on some port; a
TUN host's filter passes echo only where every port is allowed.`)
	socket := fs.String("control", "", "control socket of overlayd (default "+control.DefaultPath()+")")
	count := fs.Int("c", 4, "number of echo requests (1-65535)")
	interval := fs.Duration("i", time.Second, "time between echo requests")
	timeout := fs.Duration("timeout", control.DefaultPingTimeout, "how long to wait for each reply (at most 20s)")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	switch {
	case *count < 1 || *count > 65535:
		return fs.usageError("-c %d: want 1-65535", *count)
	case *interval < 0:
		return fs.usageError("-i %v: want 0 or more", *interval)
	case *timeout <= 0 || *timeout > 20*time.Second:
		return fs.usageError("--timeout %v: want more than 0, at most 20s", *timeout)
	}
	cc := control.Client{Path: *socket}
	w := e.stdout
	var rtts []time.Duration
	var last *control.PingReply
	start := time.Now()
	for i := range *count {
		if i > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i) * *interval)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout+controlTimeout)
		r, err := cc.Ping(ctx, pos[0], uint16(i+1), *timeout)
		cancel()
		if err != nil {
			if len(rtts) > 0 {
				writePingStats(w, last, i, rtts)
			}
			return err
		}
		last = r
		if !r.Replied {
			continue
		}
		if len(rtts) == 0 {
			fmt.Fprintf(w, "PING %s (%s) from %s (%s) through the overlay: %d data bytes\n",
				r.Peer, r.Address, r.From, r.FromAddress, r.Bytes-8)
		}
		fmt.Fprintf(w, "%d bytes from %s (%s): icmp_seq=%d time=%s\n", r.Bytes, r.Peer, r.Address, r.Seq, millis(r.RTT))
		rtts = append(rtts, r.RTT)
	}
	if len(rtts) == 0 {
		if *count == 1 {
			return fmt.Errorf("no reply from %s (%s) within %v", last.Peer, last.Address, last.Timeout)
		}
		return fmt.Errorf("no reply from %s (%s) to %d echo requests, each given %v", last.Peer, last.Address, *count, last.Timeout)
	}
	writePingStats(w, last, *count, rtts)
	return nil
}

// writePingStats prints ping's summary: sent requests, replies, loss and
// the round trips' range.
func writePingStats(w io.Writer, r *control.PingReply, sent int, rtts []time.Duration) {
	lo, hi, sum := rtts[0], rtts[0], time.Duration(0)
	for _, d := range rtts {
		lo, hi, sum = min(lo, d), max(hi, d), sum+d
	}
	fmt.Fprintf(w, "\n--- %s ping statistics ---\n", r.Peer)
	fmt.Fprintf(w, "%d packets transmitted, %d received, %d%% packet loss\n", sent, len(rtts), 100*(sent-len(rtts))/sent)
	fmt.Fprintf(w, "rtt min/avg/max = %.3f/%.3f/%.3f ms\n", ms(lo), ms(sum/time.Duration(len(rtts))), ms(hi))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func millis(d time.Duration) string { return fmt.Sprintf("%.3f ms", ms(d)) }
