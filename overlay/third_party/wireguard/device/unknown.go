/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

import (
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// UnknownSessionInterval is the least time between two searches for the
// peer behind a transport message for an unknown session.
const UnknownSessionInterval = 100 * time.Millisecond

// unknownSession handles a transport message for a session this device does
// not have: the peer at that endpoint still sends on a session from before
// this device restarted. Upstream drops the message, and the peer keeps
// sending on the dead session until its own timers give up on it
// (KeepaliveTimeout + RekeyTimeout: 15 s). Here the device starts a
// handshake with the peer it has at that endpoint, so that the peer's next
// message goes on a fresh session. The search runs at most once per
// UnknownSessionInterval for the whole device, and SendHandshakeInitiation
// sends at most one initiation per peer per RekeyTimeout, to the peer's own
// endpoint: forged messages cost a bounded search and send a peer nothing
// but an ordinary handshake.
func (device *Device) unknownSession(ep conn.Endpoint) {
	now := time.Now().UnixNano()
	last := device.unknownSessionAt.Load()
	if now-last < int64(UnknownSessionInterval) || !device.unknownSessionAt.CompareAndSwap(last, now) {
		return
	}
	dst := ep.DstToString()
	var found *Peer
	device.peers.RLock()
	for _, peer := range device.peers.keyMap {
		peer.endpoint.Lock()
		match := peer.endpoint.val != nil && peer.endpoint.val.DstToString() == dst
		peer.endpoint.Unlock()
		if match {
			found = peer
			break
		}
	}
	device.peers.RUnlock()
	if found == nil || !found.isRunning.Load() {
		return
	}
	device.log.Verbosef("%v - Received data for an unknown session; initiating a handshake", found)
	found.SendHandshakeInitiation(false)
}
