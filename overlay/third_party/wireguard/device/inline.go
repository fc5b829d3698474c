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
// follow the peer's inlineBurst previous ones in the same direction within
// inlineMinGap (a stream, such as the ACKs of a bulk transfer, which the
// workers batch better), keep the parallel workers.
//
// nodewire patch 0007: inlineBurst is 2, not 1. A round trip through
// gVisor sends two small batches each way close together: the pure ACK of
// the message and, tens of microseconds later, the reply. With a burst of
// one the reply (and, at the other end, the next message after that ACK)
// took the workers: an execution trace of a userspace ping-pong showed one
// batch in four or five each way on the worker path.
const (
	inlineMaxBatch = 2
	inlineMaxSize  = 512 // bytes of inner packet
	inlineMinGap   = 50 * time.Microsecond
	inlineBurst    = 2 // batches per inlineMinGap that may go inline
)

// monoStart makes monotonic timestamps for inlineState.
var monoStart = time.Now()

type inlineState struct {
	sendMu     sync.Mutex
	outPending atomic.Int32               // containers in queue.outbound, not yet sent
	sendBufs   [][]byte                   // under sendMu
	lastSend   [inlineBurst]time.Duration // since monoStart, newest first, under sendMu
	sendNonce  [chacha20poly1305.NonceSize]byte

	recvMu    sync.Mutex
	inPending atomic.Int32               // containers in queue.inbound, not yet delivered
	recvBufs  [][]byte                   // under recvMu
	lastRecv  [inlineBurst]time.Duration // since monoStart, newest first, under recvMu
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
	lone := now-in.lastSend[inlineBurst-1] >= inlineMinGap
	copy(in.lastSend[1:], in.lastSend[:])
	in.lastSend[0] = now
	if lone && in.outPending.Load() == 0 && smallOutbound(elemsContainer.elems) {
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
	lone := now-in.lastRecv[inlineBurst-1] >= inlineMinGap
	copy(in.lastRecv[1:], in.lastRecv[:])
	in.lastRecv[0] = now
	if lone && in.inPending.Load() == 0 && smallInbound(elemsContainer.elems) {
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
