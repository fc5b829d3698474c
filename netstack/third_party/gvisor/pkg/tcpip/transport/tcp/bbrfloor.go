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
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
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

	// roundStart and roundDelivered are when the current round began and
	// the sender's delivered count then.
	roundStart     tcpip.MonotonicTime
	roundDelivered int
	// roundAppLimited says the sender ran out of data during the round:
	// its sample only counts if it raises the max.
	roundAppLimited bool

	// bw holds one delivery rate sample (packets per second) per round.
	bw    [bbrBwRounds]float64
	bwIdx int

	minRTT      time.Duration
	minRTTStamp tcpip.MonotonicTime
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
	if s.writeNext == nil {
		b.roundAppLimited = true
	}
	if s.SndUna == s.SndNxt {
		// Nothing in flight: no rate to measure. Restart the round
		// so idle time is never counted in a sample.
		b.roundStart, b.roundDelivered, b.roundAppLimited = now, s.delivered, false
		return
	}
	elapsed := now.Sub(b.roundStart)
	if b.minRTT == 0 || elapsed < b.minRTT {
		return
	}
	sample := float64(s.delivered-b.roundDelivered) / elapsed.Seconds()
	if !b.roundAppLimited || sample > b.maxBw() {
		b.bw[b.bwIdx] = sample
		b.bwIdx = (b.bwIdx + 1) % bbrBwRounds
	}
	b.roundStart, b.roundDelivered, b.roundAppLimited = now, s.delivered, false
}

func (b *bbrFloorState) maxBw() float64 {
	m := 0.0
	for _, v := range b.bw {
		m = max(m, v)
	}
	return m
}

// floor is bbrCwndGain times the estimated BDP in packets, at least
// bbrMinFloor and at most the send buffer.
//
// +checklocks:b.s.ep.mu
func (b *bbrFloorState) floor() int {
	bdp := b.maxBw() * b.minRTT.Seconds()
	limit := max(bbrMinFloor, b.s.ep.getSendBufferSize()/max(b.s.MaxPayloadSize, 1))
	f := bbrCwndGain*bdp + 1
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
	b.s.Ssthresh = max(b.s.Ssthresh, b.floor())
}

// HandleRTOExpired implements congestionControl.HandleRTOExpired: cwnd 1
// as Reno, and slow start back to the floor.
//
// +checklocks:b.s.ep.mu
func (b *bbrFloorState) HandleRTOExpired() {
	b.renoState.HandleRTOExpired()
	b.s.Ssthresh = max(b.s.Ssthresh, b.floor())
}
