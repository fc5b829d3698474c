package netstack

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// TCP tuning: gVisor's defaults are sized for a sandbox,
// not for a bulk tunnel, and its loss recovery leans on the retransmission
// timer far more than Linux does. Figures are from e2e BenchmarkLossMatrix (16
// MiB erpc:call between two namespaced hosts, nftables loss on the
// underlay, both ways).
const (
	tcpRecvBufMax = 8 << 20
	tcpSendBufMax = 6 << 20

	// tcpMinRTO is the floor of the retransmission timeout (gVisor: 200
	// ms, as Linux). gVisor's SACK recovery stalls once a retransmission
	// timeout has struck: the timeout expunges the SACK scoreboard, and
	// the fast recovery that RACK starts on the next ACK then counts every
	// segment sent before the timeout as still in flight (SetPipe ignores
	// RACK's lost marks), so nothing more is sent until the next timeout,
	// which repairs one hole (gVisor's counters in that state: one
	// timeout, one fast retransmit and two segments sent per timeout).
	// The recovery of a window with N holes costs N timeouts: at 2%
	// random loss 7-24 s for 16 MiB across runs instead of 0.2 s,
	// at 5% the transfer did not finish in 60 s and the Erlang connection
	// was lost. No option of this gVisor avoids the stall; a short floor
	// makes each of them cost a few round trips instead of 200 ms. The
	// timeout is still srtt + 4 rttvar above the floor, so long paths
	// keep theirs: the floor only matters where the round trip is a few
	// milliseconds. Measured (3 rounds, medians, same run; plain
	// distribution in brackets): 2% 7.2 s -> 0.9 s [0.3 s], 5% never
	// within 30 s -> 3.6 s [0.5 s], burst 10/200 7.8 s -> 3.1 s [8.2 s].
	// A 1 ms floor measured no better overall (2% 0.5 s, 5% 5.5 s, burst
	// 6.8 s in the same run): on a busy host rttvar keeps the timeout
	// above a few milliseconds anyway.
	//
	// The stall above had causes in gVisor's TCP, now patched
	// (netstack/third_party/gvisor-patches, each patch with its reason
	// and numbers): a GSO segment that the receiver SACKed in part stayed
	// un-SACKed, so RACK never saw the hole in it and the timeout repaired
	// it (0001; at 5% loss 110 timeouts per 16 MiB -> 30-38 in the
	// netstack lab, TestLossyTransfer); SACKed segments stayed counted in
	// flight outside recovery (0002); a recovery the timestamps showed
	// spurious (a reordered packet) halved cwnd for good (0003; 20 ms one
	// way with 1% of packets 2 ms late: 33 s -> 2 s for 16 MiB); a lost
	// retransmission waited for the timeout when nothing else was sent
	// (0004); a lost tail with the in-flight estimate at 0 armed no
	// timer at all, so the transfer never ended (0005; about 1 in 25
	// transfers at 5% loss before, 0 in 60 after); and a fast
	// retransmission did not restart the timer (an inverted test), so it
	// fired one timeout after the ACK that began recovery, before the
	// retransmission's ACK could be back, wherever the timeout is close
	// to the round trip (0006; 5 ms one way, 2% loss: 22 -> 8 timeouts
	// per 16 MiB, medians of 15; the time stays at the 16 s Reno's window
	// allows there, Mathis' 1.22 MSS/(RTT sqrt p), as kernel TCP's would).
	// Measured and not carried: SetPipe leaving out RACK-lost segments (no
	// gain in three sessions; on top of 0006 at 5% loss, paired time
	// ratio 1.30, timeouts 20.5 -> 21) and holding ssthresh on a timeout
	// inside recovery as Linux's tcp_enter_loss does (ratio 1.02). The
	// short floor stays: lost retransmissions still end in timeouts
	// (about 20-30 per 16 MiB at 5% loss; at no delay each is one with
	// nothing sent after it for RACK to see it by).
	//
	// The short floor leaves the timeout srtt + 4 rttvar, a few
	// milliseconds above the round trip on a steady path (make wan's
	// fifo20, 20 ms one way, no loss: RTO 48.7 ms for a 43.3 ms RTT), and
	// the tail loss probe's timeout is capped at it: on a loaded host late
	// ACKs set off timeouts, probes and recoveries with nothing lost, each
	// leaving ssthresh at half the few segments in flight during the
	// request/response phase, so the bulk after it grew by one segment per
	// round trip (under 10 MB/s in 9 of 10 rounds, against plain TCP's
	// 26-64). Without DSACK (this receiver sends none) only 0003's undo
	// of a fast recovery caught any, and not on an ACK acknowledging
	// everything: 0007 undoes a timeout, a recovery and a probe whenever
	// the ACK echoes a timestamp from before the retransmission, as Linux
	// does (fifo20 14.7-54.8 MB/s in 10 rounds, none under 10). A margin of
	// at least srtt/2 in the timeout (Linux's variant: srtt + 200 ms) was
	// measured on top and not carried: no gain over 0007, and a longer
	// timeout slows recovery of lost retransmissions at 2% loss.
	//
	// With Reno (before patch 0010), what seemed to limit userspace
	// goodput under random loss was Reno itself (sampled in overlayd
	// every 500 µs, make wan loss2: 76-78% of the time
	// open, 22-24% in SACK recovery, 0-1% after a timeout). Its window
	// settles near Mathis' 1.22/sqrt(p) segments (mean cwnd 10.2 at 2%
	// loss, 7.0 at 5%), and goodput is that window per round trip: ~0.4
	// ms through two daemons, 34 MB/s. Reno's ssthresh undershot half the
	// window (half of the un-SACKed segments, not of FlightSize); 0008
	// fixes it: mean cwnd 11.7-12.6 and ssthresh 7.5-8.3 at 2% (from 5.2),
	// goodput 39.6-40.9 against 34.6-37.4 MB/s (same run), and the
	// reordering cell delay20 21.9-29.2 against 5.6-10.2. make wan's plain
	// row is no loss-based reference: the kernel there runs BBR (the
	// machine's net.ipv4.tcp_congestion_control), which does not take
	// random loss as congestion (its sender's cwnd 470-970 segments at 2%
	// loss, ss -ti). With -kernel-cc reno the same kernel keeps 0.40,
	// 0.14, 0.05 and 0.00 of its clean goodput at 0.5, 1, 2 and 5% loss
	// (200 ms minimum RTO), userspace 0.71, 0.69, 0.52 and 0.30 in the same
	// run. Matching BBR's fraction with a loss-based algorithm would take
	// twice Reno's window at 2% loss, or half the round trip.
	// Looked at and left: the round trip under loss is the idle one (40
	// MB/s over 12 segments is 0.4 ms; idle erpc:call 0.3-0.45 ms), so no
	// queue here or in WireGuard inflates it; lost ACKs show as tail loss
	// probes, 6-28 per 4 s bulk of ~2 ms each (gVisor's srtt has the 1 ms
	// resolution of TCP timestamps, so the probe timeout is at least 2
	// ms), timeouts 7-9 at 2% and 29-46 at 5%: a few percent of the time;
	// PRR (RFC 6937) spaces recovery's sends but ends at the same
	// ssthresh, and it is the window that limits. A later look with perf
	// and logging in overlayd (h-bbr2) disagrees: under bulk it saw
	// round trips of 5-15 ms, Reno windows of 150-350 packets and the
	// sending daemon's CPU as the limit (see DefaultCongestionControl);
	// the two samplings were not reconciled.
	tcpMinRTO = 5 * time.Millisecond
	// tcpMaxRTO caps the timeout's exponential backoff (gVisor: 120 s).
	// Erlang distribution sends its ticks in the same stream as the data,
	// so a sender backed off to tens of seconds keeps them from the peer
	// until net_ticktime (60 s) declares the node down: most likely how
	// the connection was lost at 5% loss. A retransmission a second on a dead
	// path costs nothing; userTimeout still ends a connection to a peer
	// that is gone.
	tcpMaxRTO = time.Second
	// tcpMaxRetries lets userTimeout, not the retry count, end a
	// connection that makes no progress: with the timeout capped at
	// tcpMaxRTO, gVisor's 15 retries would give up after ~15 s.
	tcpMaxRetries = uint32(2 * userTimeout / tcpMaxRTO)
)

// DefaultCongestionControl is bbrfloor (gVisor patch 0010): Reno whose
// loss response keeps BBR v1's cwnd target (tcp_bbr.c: 2 x BDP from
// per-packet delivery rate samples and the min RTT, plus ACK
// aggregation, plus 3 send quanta), unless a round lost 20% of what
// it sent. Kernel TCP here runs BBR: random loss is no congestion
// signal to it, while Reno's window under loss stays near
// 1.22/sqrt(p) segments. Patch 0011 makes that window affordable
// (gVisor's SACK bookkeeping per ACK was 61% of the sending
// daemon's CPU at 2% loss with it). make wan, same run against main,
// quiet host, fraction of clean goodput (plain distribution's): 1%
// loss 0.48 against 0.33 (0.94), 2% 0.45 against 0.26 (0.80), 5% 0.33
// against 0.17 (0.53), burst 0.31 against 0.02 (0.46); d20loss1 16.0
// against 0.262 MB/s; clean 160 both. What then bounded goodput
// under loss was the sending overlayd's CPU, not its window: the
// receiver acknowledged every out-of-order segment at once, and each
// ACK cost a decryption and gVisor's SACK processing (40% of the
// sender's perf samples at 1% loss). Patch 0012 holds those ACKs as
// Linux does (SACK compression): handleRcvdSegment went from 40 to 7%
// of the sender's samples, and make wan's fractions rose to 0.83, 0.79
// and 0.63 at 1, 2 and 5% loss against plain's 0.84, 0.72 and 0.46
// (same run, quiet host; 0.50, 0.48 and 0.41 before it).
// Congested lab (TestLossyTransfer, NODEWIRE_LOSSY_RATE 20 MB/s, 2 ms
// each way): 256 KiB FIFO, same goodput and drops as Reno; 64 KiB
// FIFO, shallower than the floor, 5.8-16.3 MB/s against Reno's
// 15.6-17.0 and 3-5x its tail drops (BBR v1 without pacing; the 20%
// rule keeps it from a storm). Numbers in the patch's header.
const DefaultCongestionControl = "bbrfloor"

// CongestionControls lists what Config.CongestionControl may name:
// bbrfloor, and reno, its loss response without the floor, for paths whose
// bottleneck queue is shallower than bbrfloor's window (see above). gVisor's
// cubic is left out: upstream's is not safe (branch h-cubic) and paid
// nothing at these loss rates.
func CongestionControls() []string { return []string{"bbrfloor", "reno"} }

// CheckCongestionControl says why name is not one of CongestionControls
// ("" is: it stands for DefaultCongestionControl), as `"cubic": want
// bbrfloor or reno`; nil if it is.
func CheckCongestionControl(name string) error {
	if name == "" || slices.Contains(CongestionControls(), name) {
		return nil
	}
	return fmt.Errorf("%q: want %s", name, strings.Join(CongestionControls(), " or "))
}

// setTCPOptions sets the stack-wide TCP options every endpoint starts with.
func setTCPOptions(ip *stack.Stack, cc string) error {
	opts := []tcpOption{
		{"enable TCP SACK", ptr(tcpip.TCPSACKEnabled(true))},
		// RACK-TLP loss detection (gVisor's default, kept on purpose:
		// without it recovery waits for three duplicate ACKs, which the
		// receiver's GRO and its changing window make rarer; measured
		// off, it was no better at 2% and worse at 5% loss).
		{"set TCP loss detection", ptr(tcpip.TCPRACKLossDetection)},
		{"set TCP receive buffer range", &tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultReceiveBufferSize, Max: tcpRecvBufMax}},
		{"set TCP send buffer range", &tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultSendBufferSize, Max: tcpSendBufMax}},
		{"enable TCP receive buffer moderation", ptr(tcpip.TCPModerateReceiveBufferOption(true))},
		// Reno, not cubic: this gVisor's cubic grows cwnd as C·t³ from
		// the last loss with no clamp (cubic.go getCwnd), so a
		// long-lived, rarely lossy distribution connection reaches a
		// window whose (cwnd - outstanding) * MSS overflows in sendData
		// (coder/coder#20885; reworked upstream after this version).
		// Made safe (branch h-cubic) it paid nothing at these loss
		// rates: at a sub-millisecond round trip cubic stays in its
		// Reno-friendly region. Patch 0008 sets Reno's ssthresh from
		// FlightSize, as RFC 5681 says (numbers at tcpMinRTO). Patch 0010
		// adds bbrfloor, Reno with BBR v1's window as the floor of its loss
		// response (numbers at DefaultCongestionControl).
		{"set TCP congestion control", ptr(tcpip.CongestionControlOption(cc))},
		{"set TCP minimum RTO", ptr(tcpip.TCPMinRTOOption(tcpMinRTO))},
		{"set TCP maximum RTO", ptr(tcpip.TCPMaxRTOOption(tcpMaxRTO))},
		{"set TCP maximum retries", ptr(tcpip.TCPMaxRetriesOption(tcpMaxRetries))},
		// TIME-WAIT: the forwarder has no listening endpoint, so gVisor
		// drops a new SYN for a 4-tuple in TIME-WAIT instead of handing
		// it on (Linux would accept it). EPMD lookups from userspace
		// peers close first and leave TIME-WAIT with them (relay.go); for
		// other connections a peer that reuses a source port would retry
		// for 12 s and fail. Over WireGuard, which neither duplicates nor
		// delays packets for long, a second of TIME-WAIT is enough; the
		// SYN's first retransmission then gets through.
		{"set TCP TIME-WAIT timeout", ptr(tcpip.TCPTimeWaitTimeoutOption(timeWait))},
		{"set TCP TIME-WAIT reuse", ptr(tcpip.TCPTimeWaitReuseGlobal)},
	}
	for _, o := range opts {
		if terr := ip.SetTransportProtocolOption(tcp.ProtocolNumber, o.opt); terr != nil {
			return fmt.Errorf("netstack: %s: %s", o.what, terr)
		}
	}
	return nil
}

// tcpOption is one option and what setting it does, for the error.
type tcpOption struct {
	what string
	opt  tcpip.SettableTransportProtocolOption
}

func ptr[T any](v T) *T { return &v }
