/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

import (
	"bytes"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// TestUnknownSession checks nodewire patch 0006 (upstream-test.sh copies
// this file next to upstream's tests): device 0 loses its sessions, as a
// restarted daemon does, while device 1 keeps sending on its old one.
// Device 0 answers the first message for the unknown session with a
// handshake of its own, so device 1's messages get through again well
// before device 1's own timers would give up on the old session (15 s), and
// device 0 is the new session's initiator.
func TestUnknownSession(t *testing.T) {
	goroutineLeakCheck(t)
	pair := genTestPair(t, true)
	pair.Send(t, Ping, nil)
	pair.Send(t, Pong, nil)

	var p0 *Peer
	pair[0].dev.peers.RLock()
	for _, p := range pair[0].dev.peers.keyMap {
		p0 = p
	}
	pair[0].dev.peers.RUnlock()
	p0.ZeroAndFlushAll()
	p0.handshake.mutex.Lock()
	p0.handshake.lastSentHandshake = time.Now().Add(-(RekeyTimeout + time.Second)) // as a new peer has it
	p0.handshake.mutex.Unlock()

	// Device 1 sends to device 0 until a message arrives; each try waits
	// a second. Upstream, nothing arrives before device 1's own retry.
	msg := tuntest.Ping(pair[0].ip, pair[1].ip)
	deadline := time.Now().Add(RekeyTimeout + KeepaliveTimeout - 3*time.Second)
	for arrived := false; !arrived; {
		if time.Now().After(deadline) {
			t.Fatal("no message from device 1 arrived: the unknown session was not answered with a handshake")
		}
		pair[1].tun.Outbound <- msg
		select {
		case got := <-pair[0].tun.Inbound:
			if !bytes.Equal(got, msg) {
				t.Fatal("message did not transit correctly")
			}
			arrived = true
		case <-time.After(time.Second):
		}
	}
	p0.keypairs.RLock()
	kp := p0.keypairs.current
	p0.keypairs.RUnlock()
	if kp == nil || !kp.isInitiator {
		t.Fatalf("device 0's new session: %v; want one it initiated", kp)
	}
}
