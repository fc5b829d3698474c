/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

import (
	"sync"
	"sync/atomic"
)

// sequentialState says whether a peer's sequential queues and routines
// (RoutineSequentialSender, RoutineSequentialReceiver) are up. They start
// on the peer's first packet that needs them, not in Start (nodewire patch
// 0003): the two queues hold 18 KB and the two goroutines at least 16 KB
// of stack per peer, 330 MB for a device of 10,000 peers, most of which
// never exchange a packet with this host; and a packet sent or delivered
// inline (patch 0001) needs neither.
type sequentialState struct {
	mu      sync.Mutex
	allowed bool        // the peer is running: the routines may start (under mu)
	started bool        // the routines were started since Start (under mu)
	up      atomic.Bool // started, read without mu
}

// startSequential makes sure the peer's sequential queues exist and its
// sequential routines run. It reports false when the peer is stopped: the
// caller then recycles what it meant to queue.
func (peer *Peer) startSequential() bool {
	s := &peer.sequential
	if s.up.Load() {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.allowed {
		return false
	}
	if s.started {
		return true
	}
	if peer.queue.outbound == nil {
		peer.queue.outbound = newAutodrainingOutboundQueue(peer.device)
		peer.queue.inbound = newAutodrainingInboundQueue(peer.device)
	}
	// Use the device batch size, not the bind batch size, as the device size is
	// the size of the batch pools.
	batchSize := peer.device.BatchSize()
	peer.stopping.Add(2)
	go peer.RoutineSequentialSender(batchSize)
	go peer.RoutineSequentialReceiver(batchSize)
	s.started = true
	s.up.Store(true)
	return true
}

// allowSequential lets the routines start once the peer runs, after
// flushing what its queues kept from before it stopped (Start).
func (peer *Peer) allowSequential() {
	s := &peer.sequential
	s.mu.Lock()
	defer s.mu.Unlock()
	if peer.queue.outbound != nil {
		peer.device.flushInboundQueue(peer.queue.inbound)
		peer.device.flushOutboundQueue(peer.queue.outbound)
	}
	s.allowed = true
}

// stopSequential stops the routines if they were started and waits for
// them to exit (Stop).
func (peer *Peer) stopSequential() {
	s := &peer.sequential
	s.mu.Lock()
	started := s.started
	s.allowed, s.started = false, false
	s.up.Store(false)
	s.mu.Unlock()
	if started {
		// Signal that RoutineSequentialSender and RoutineSequentialReceiver should exit.
		peer.queue.inbound.c <- nil
		peer.queue.outbound.c <- nil
	}
	peer.stopping.Wait()
}
