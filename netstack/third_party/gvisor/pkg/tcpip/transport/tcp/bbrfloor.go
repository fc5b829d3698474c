// Copyright 2018 The gVisor Authors.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

package tcp

import (
	"math"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

const (
	// bbrBwRounds is how many rounds the max-bandwidth filter spans
	// (Linux tcp_bbr.c bbr_bw_rtts).
	bbrBwRounds = 10
	// bbrMinRTTWindow is how long a min RTT sample stays valid (Linux
	// tcp_bbr.c bbr_min_rtt_win_sec).
	bbrMinRTTWindow = 10 * time.Second
	// bbrCwndGain is BBR's cwnd_gain: in flight up to twice the BDP.
	bbrCwndGain = 2
	// bbrMinFloor is BBR's minimum window (bbr_cwnd_min_target).
	bbrMinFloor = 4
	// bbrLossThresh is the share of a round's packets lost from which
	// loss is taken as congestion, and bbrLossyRounds how many rounds the
	// floor then stays off (Reno's response alone). BBR v1 takes 20% loss
	// over an interval as a policer (bbr_lt_loss_thresh 50/256) and then
	// sends no faster than it delivered. Without pacing the floor's
	// window beyond the BDP goes into the bottleneck's queue at once: a
	// queue shallower than that overflows every round.
	bbrLossThresh  = 0.2
	bbrLossyRounds = 4
	// bbrExtraAckedRounds is how many rounds one of the two ACK
	// aggregation windows spans (bbr_extra_acked_win_rtts).
	bbrExtraAckedRounds = 5
	// bbrExtraAckedMax caps the aggregation allowance at this much time
	// of the delivery rate (bbr_extra_acked_max_us).
	bbrExtraAckedMax = 100 * time.Millisecond
	// bbrAckEpochReset restarts an aggregation epoch that has counted
	// this many packets (bbr_ack_epoch_acked_reset_thresh).
	bbrAckEpochReset = 1 << 20
	// bbrQuantumShift: a send quantum is the data of 1/1024 s at the
	// delivery rate (Linux's sk_pacing_shift 10, tcp_tso_autosize), at
	// least 2 and at most one GSO segment of 64 KiB (bbr_tso_segs_goal).
	bbrQuantumShift    = 10
	bbrQuantumMaxBytes = 1<<16 - 1 - header.TCPTotalHeaderMaximumSize
	// bbrQuanta is how many send quanta the window holds beyond the BDP:
	// one queued at the sender, one in its GSO, one in the receiver's
	// GRO/delayed ACK (bbr_quantization_budget).
	bbrQuanta = 3
)

// bbrFloorState is Reno whose loss response never goes below BBR v1's
// window, twice the bandwidth-delay product estimated from the delivery
// rate (the max over the last bbrBwRounds rounds) and the min RTT (over
// bbrMinRTTWindow). Growth between losses is Reno's. Random loss then no
// longer collapses the window, while congestion still bounds it: the
// delivery rate is that of the bottleneck, as in BBR v1, which takes loss
// as no signal beyond packet conservation.
type bbrFloorState struct {
	renoState

	// nextRoundDelivered ends the current round: the round ends when a
	// packet sent after it began is delivered (packet-timed, as BBR's
	// next_rtt_delivered).
	nextRoundDelivered int
	// roundDelivered and roundRetransmitted are the sender's counts when
	// the round began; lossyRounds counts down the rounds during which
	// loss is taken as congestion (bbrLossThresh).
	roundDelivered     int
	roundRetransmitted int
	lossyRounds        int

	// bw holds the max delivery rate sample (packets per second) of each
	// of the last bbrBwRounds rounds; bwIdx is the current round's.
	bw    [bbrBwRounds]float64
	bwIdx int

	minRTT      time.Duration
	minRTTStamp tcpip.MonotonicTime

	// ACK aggregation (bbr_update_ack_aggregation): packets delivered
	// in the current epoch beyond what maxBw would have delivered, max
	// per window of bbrExtraAckedRounds rounds, two windows.
	lastDelivered    int
	ackEpochStart    tcpip.MonotonicTime
	ackEpochAcked    int
	extraAcked       [2]int
	extraAckedIdx    int
	extraAckedRounds int
}

func newBBRFloorCC(s *sender) *bbrFloorState {
	return &bbrFloorState{renoState: renoState{s: s}}
}

// OnAck implements ackObserver: it is called on every ACK, in recovery
// too, after the ACK's SACK blocks and cumulative ACK were counted.
//
// +checklocks:b.s.ep.mu
func (b *bbrFloorState) OnAck() {
	s := b.s
	now := s.ep.stack.Clock().NowMonotonic()
	// RACK's RTT is per segment, from its send time: the timestamps'
	// RTT has a resolution of 1 ms.
	if rtt := s.rc.RTT; rtt > 0 && (b.minRTT == 0 || rtt <= b.minRTT || now.Sub(b.minRTTStamp) > bbrMinRTTWindow) {
		b.minRTT, b.minRTTStamp = rtt, now
	}
	acked := s.delivered - b.lastDelivered
	b.lastDelivered = s.delivered
	rs := s.rs
	s.rs.valid = false
	if !rs.valid {
		return
	}
	roundStart := false
	if rs.priorDelivered >= b.nextRoundDelivered {
		// A round that lost bbrLossThresh of what it sent met no random
		// loss but a queue that overflowed.
		lost := s.retransmitted - b.roundRetransmitted
		if sent := s.delivered - b.roundDelivered + lost; sent > 0 && float64(lost) >= bbrLossThresh*float64(sent) {
			b.lossyRounds = bbrLossyRounds
		} else if b.lossyRounds > 0 {
			b.lossyRounds--
		}
		b.roundDelivered, b.roundRetransmitted = s.delivered, s.retransmitted
		b.nextRoundDelivered = s.delivered
		b.bwIdx = (b.bwIdx + 1) % bbrBwRounds
		b.bw[b.bwIdx] = 0
		roundStart = true
	}
	// The sample's interval is the longer of its flight's send and ACK
	// times, so ACKs that arrive in a burst do not inflate it; one
	// shorter than the min RTT is noise (tcp_rate_gen, bbr_update_bw).
	interval := max(rs.sendElapsed, rs.ackElapsed)
	if delivered := s.delivered - rs.priorDelivered; delivered > 0 && b.minRTT > 0 && interval >= b.minRTT {
		sample := float64(delivered) / interval.Seconds()
		// With nothing more to send the sample shows the application's
		// rate, not the path's: it only counts if it raises the max.
		if s.writeNext != nil || sample > b.maxBw() {
			b.bw[b.bwIdx] = max(b.bw[b.bwIdx], sample)
		}
	}
	if s.SndUna == s.SndNxt {
		// Nothing in flight: the next burst of ACKs starts a new
		// aggregation epoch.
		b.ackEpochStart, b.ackEpochAcked = now, 0
		return
	}
	if acked > 0 {
		b.updateAckAggregation(now, acked, roundStart)
	}
}

// updateAckAggregation follows Linux's bbr_update_ack_aggregation: ACKs
// that come in bursts (the receiver's GRO and delayed ACKs, the overlay's
// batches) deliver more in a short epoch than maxBw says, and the window
// must cover the gaps between the bursts or the sender idles in them.
//
// +checklocks:b.s.ep.mu
func (b *bbrFloorState) updateAckAggregation(now tcpip.MonotonicTime, acked int, roundStart bool) {
	if roundStart {
		b.extraAckedRounds++
		if b.extraAckedRounds >= bbrExtraAckedRounds {
			b.extraAckedRounds = 0
			b.extraAckedIdx ^= 1
			b.extraAcked[b.extraAckedIdx] = 0
		}
	}
	expected := int(b.maxBw() * now.Sub(b.ackEpochStart).Seconds())
	if b.ackEpochAcked <= expected || b.ackEpochAcked+acked >= bbrAckEpochReset {
		b.ackEpochStart, b.ackEpochAcked, expected = now, 0, 0
	}
	b.ackEpochAcked += acked
	extra := min(b.ackEpochAcked-expected, b.s.SndCwnd)
	b.extraAcked[b.extraAckedIdx] = max(b.extraAcked[b.extraAckedIdx], extra)
}

func (b *bbrFloorState) maxBw() float64 {
	m := 0.0
	for _, v := range b.bw {
		m = max(m, v)
	}
	return m
}

// floor is BBR v1's cwnd target (bbr_set_cwnd): bbrCwndGain times the
// estimated BDP, plus the ACK aggregation allowance, plus bbrQuanta send
// quanta, in packets; at least bbrMinFloor and at most the send buffer.
//
// +checklocks:b.s.ep.mu
func (b *bbrFloorState) floor() int {
	bw := b.maxBw()
	mss := max(b.s.MaxPayloadSize, 1)
	limit := max(bbrMinFloor, b.s.ep.getSendBufferSize()/mss)
	f := math.Ceil(bbrCwndGain * bw * b.minRTT.Seconds())
	f += min(float64(max(b.extraAcked[0], b.extraAcked[1])), bw*bbrExtraAckedMax.Seconds())
	quantum := min(bw*float64(mss)/(1<<bbrQuantumShift), bbrQuantumMaxBytes) / float64(mss)
	f += bbrQuanta * max(2, math.Floor(quantum))
	if f >= float64(limit) {
		return limit
	}
	return max(bbrMinFloor, int(f))
}

// HandleLossDetected implements congestionControl.HandleLossDetected.
//
// +checklocks:b.s.ep.mu
func (b *bbrFloorState) HandleLossDetected() {
	b.renoState.HandleLossDetected()
	b.s.Ssthresh = min(b.s.Ssthresh, max(b.s.SndCwnd/2, 2))
	if b.lossyRounds == 0 {
		b.s.Ssthresh = max(b.s.Ssthresh, b.floor())
	}
}

// HandleRTOExpired implements congestionControl.HandleRTOExpired: cwnd 1
// as Reno, and slow start back to the floor.
//
// +checklocks:b.s.ep.mu
func (b *bbrFloorState) HandleRTOExpired() {
	b.renoState.HandleRTOExpired()
	b.s.Ssthresh = min(b.s.Ssthresh, max(b.s.SndCwnd/2, 2))
	if b.lossyRounds == 0 {
		b.s.Ssthresh = max(b.s.Ssthresh, b.floor())
	}
}
