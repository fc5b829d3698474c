/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// nodewire patch 0001: a lone packet is sealed and sent (or opened and
// delivered) on the goroutine that read it, instead of passing through an
// encryption worker and the peer's sequential sender (or a decryption worker
// and the sequential receiver): two goroutine wake-ups fewer each way, which
// on an idle host are most of a small packet's time in the daemon.
//
// Order is kept: a container goes inline only when none of the peer's
// containers is queued or being sent (delivered), and the check and the
// inline send hold the peer's inline mutex, which every queueing takes too;
// a container queued later waits for the inline send to finish. Nonces are
// assigned before, exactly as upstream. Batches larger than inlineMaxBatch
// or holding a packet larger than inlineMaxSize (bulk), and batches that
// follow the peer's previous one in the same direction within inlineMinGap
// (a stream, such as the ACKs of a bulk transfer, which the workers batch
// better), keep the parallel workers.
//
// nodewire patch 0007: SetInlineBurst lets n batches per inlineMinGap go
// inline instead of one. Through a userspace TCP stack that acknowledges
// every segment at once (gVisor), a round trip sends two small batches each
// way close together: the pure ACK of the message and, tens of
// microseconds later, the reply (at the other end, that ACK and then the
// next message). With one, the second of each pair took the workers.
const (
	inlineMaxBatch = 2
	inlineMaxSize  = 512 // bytes of inner packet
	inlineMinGap   = 50 * time.Microsecond
	inlineMaxBurst = 4
)

// SetInlineBurst sets how many small batches per 50 us each peer may send,
// and receive, inline (1 to 4; default 1). Call it before the device
// carries traffic.
func (device *Device) SetInlineBurst(n int) {
	device.inlineBurst.Store(int32(min(max(n, 1), inlineMaxBurst)))
}

// lone records a batch at now in last (newest first) and reports whether
// fewer than burst batches came in the inlineMinGap before it.
func lone(last *[inlineMaxBurst]time.Duration, burst int32, now time.Duration) bool {
	b := max(burst, 1)
	ok := now-last[b-1] >= inlineMinGap
	copy(last[1:b], last[:b-1])
	last[0] = now
	return ok
}

// monoStart makes monotonic timestamps for inlineState.
var monoStart = time.Now()

type inlineState struct {
	sendMu     sync.Mutex
	outPending atomic.Int32                  // containers in queue.outbound, not yet sent
	sendBufs   [][]byte                      // under sendMu
	lastSend   [inlineMaxBurst]time.Duration // since monoStart, newest first, under sendMu
	sendNonce  [chacha20poly1305.NonceSize]byte

	recvMu    sync.Mutex
	inPending atomic.Int32                  // containers in queue.inbound, not yet delivered
	recvBufs  [][]byte                      // under recvMu
	lastRecv  [inlineMaxBurst]time.Duration // since monoStart, newest first, under recvMu
	recvNonce [chacha20poly1305.NonceSize]byte
}

// reset forgets containers flushed while the peer was stopped.
func (s *inlineState) reset() {
	s.sendMu.Lock()
	s.outPending.Store(0)
	s.sendMu.Unlock()
	s.recvMu.Lock()
	s.inPending.Store(0)
	s.recvMu.Unlock()
}

// sendOrQueue seals and sends elemsContainer (locked, nonces assigned) at
// once if it is small and nothing of the peer's is ahead of it, else queues
// it for the encryption workers and the sequential sender.
func (peer *Peer) sendOrQueue(elemsContainer *QueueOutboundElementsContainer) {
	in := &peer.inline
	in.sendMu.Lock()
	now := time.Since(monoStart)
	if lone(&in.lastSend, peer.device.inlineBurst.Load(), now) && in.outPending.Load() == 0 && smallOutbound(elemsContainer.elems) {
		for _, elem := range elemsContainer.elems {
			peer.device.seal(elem, &in.sendNonce)
		}
		in.sendBufs = peer.sendSealed(elemsContainer, in.sendBufs)
		in.sendMu.Unlock()
		return
	}
	if !peer.startSequential() {
		in.sendMu.Unlock()
		for _, elem := range elemsContainer.elems {
			peer.device.PutMessageBuffer(elem.buffer)
			peer.device.PutOutboundElement(elem)
		}
		peer.device.PutOutboundElementsContainer(elemsContainer)
		return
	}
	in.outPending.Add(1)
	peer.queue.outbound.c <- elemsContainer
	in.sendMu.Unlock()
	peer.device.queue.encryption.c <- elemsContainer
}

// receiveOrQueue opens and delivers elemsContainer (locked) at once if it
// is small and nothing of the peer's is ahead of it, else queues it for the
// decryption workers and the sequential receiver.
func (peer *Peer) receiveOrQueue(elemsContainer *QueueInboundElementsContainer) {
	in := &peer.inline
	in.recvMu.Lock()
	now := time.Since(monoStart)
	if lone(&in.lastRecv, peer.device.inlineBurst.Load(), now) && in.inPending.Load() == 0 && smallInbound(elemsContainer.elems) {
		for _, elem := range elemsContainer.elems {
			open(elem, &in.recvNonce)
		}
		in.recvBufs = peer.deliver(elemsContainer, in.recvBufs)
		in.recvMu.Unlock()
		return
	}
	if !peer.startSequential() {
		in.recvMu.Unlock()
		for _, elem := range elemsContainer.elems {
			peer.device.PutMessageBuffer(elem.buffer)
			peer.device.PutInboundElement(elem)
		}
		peer.device.PutInboundElementsContainer(elemsContainer)
		return
	}
	in.inPending.Add(1)
	peer.queue.inbound.c <- elemsContainer
	in.recvMu.Unlock()
	peer.device.queue.decryption.c <- elemsContainer
}

func smallOutbound(elems []*QueueOutboundElement) bool {
	if len(elems) > inlineMaxBatch {
		return false
	}
	for _, elem := range elems {
		if len(elem.packet) > inlineMaxSize {
			return false
		}
	}
	return true
}

func smallInbound(elems []*QueueInboundElement) bool {
	if len(elems) > inlineMaxBatch {
		return false
	}
	for _, elem := range elems {
		if len(elem.packet) > inlineMaxSize+MessageTransportSize {
			return false
		}
	}
	return true
}
