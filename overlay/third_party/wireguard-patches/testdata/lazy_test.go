/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// TestLazyPeerState checks nodewire patches 0002-0004 (upstream-test.sh
// copies this file next to upstream's tests): a peer comes up without its
// static-static secret, its sequential queues and routines and its staged
// queue; a packet too big to go inline (patch 0001) makes them all and
// arrives, both ways; after Down and Up they start again on first use; and
// nothing leaks when the devices close.
func TestLazyPeerState(t *testing.T) {
	goroutineLeakCheck(t)
	pair := genTestPair(t, true)
	peerOf := func(i int) *Peer {
		d := pair[i].dev
		d.peers.RLock()
		defer d.peers.RUnlock()
		for _, p := range d.peers.keyMap {
			return p
		}
		t.Fatalf("device %d has no peer", i)
		return nil
	}
	idle := func(when string) {
		t.Helper()
		for i := range pair {
			p := peerOf(i)
			if p.sequential.up.Load() {
				t.Fatalf("%s: device %d: the peer's sequential routines run", when, i)
			}
		}
	}
	// big sends from to to a packet larger than inlineMaxSize.
	big := func(from, to testPeer) {
		t.Helper()
		msg := append(tuntest.Ping(to.ip, from.ip), make([]byte, 2*inlineMaxSize)...)
		binary.BigEndian.PutUint16(msg[2:], uint16(len(msg))) // IPv4 total length
		from.tun.Outbound <- msg
		select {
		case got := <-to.tun.Inbound:
			if !bytes.Equal(got, msg) {
				t.Fatal("big packet did not transit correctly")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("big packet did not transit")
		}
	}

	idle("after Up")
	for i := range pair {
		p := peerOf(i)
		if p.queue.outbound != nil || p.queue.staged.load() != nil {
			t.Fatalf("device %d: the peer's queues exist before any packet", i)
		}
		p.handshake.staticStaticMu.Lock()
		done := p.handshake.staticStaticDone
		p.handshake.staticStaticMu.Unlock()
		if done {
			t.Fatalf("device %d: static-static computed before any handshake", i)
		}
	}
	big(pair[1], pair[0])
	big(pair[0], pair[1])
	for i := range pair {
		p := peerOf(i)
		if !p.sequential.up.Load() || p.queue.staged.load() == nil {
			t.Fatalf("device %d: the peer's sequential routines or staged queue not up after big packets", i)
		}
		ss, err := pair[i].dev.staticIdentity.privateKey.sharedSecret(p.handshake.remoteStatic)
		if err != nil || p.handshake.staticStatic(&pair[i].dev.staticIdentity.privateKey) != ss {
			t.Fatalf("device %d: static-static after the handshake is not the DH of the keys (err %v)", i, err)
		}
	}

	for i := range pair {
		if err := pair[i].dev.Down(); err != nil {
			t.Fatal(err)
		}
	}
	idle("after Down")
	for i := range pair {
		if err := pair[i].dev.Up(); err != nil {
			t.Fatal(err)
		}
	}
	idle("after Down and Up")
	big(pair[0], pair[1])
	big(pair[1], pair[0])
}
