/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

import (
	"bytes"
	"testing"
	"time"
)

// TestCrossedInitiations checks nodewire patch 0005 (upstream-test.sh
// copies this file next to upstream's tests): when both sides initiate at
// once, the side with the higher public key drops the other's initiation
// and keeps its own, the other consumes it, and the one handshake left
// completes with a session on both sides. Past CrossedInitiationWindow, an
// initiation is consumed as upstream does.
func TestCrossedInitiations(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sentAgo time.Duration
		crossed bool
	}{
		{"crossed", 0, true},
		{"ours long unanswered", CrossedInitiationWindow + time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev1, dev2 := randDevice(t), randDevice(t)
			defer dev1.Close()
			defer dev2.Close()
			// hi has the higher public key.
			hi, lo := dev1, dev2
			if bytes.Compare(dev1.staticIdentity.publicKey[:], dev2.staticIdentity.publicKey[:]) < 0 {
				hi, lo = dev2, dev1
			}
			loOnHi, err := hi.NewPeer(lo.staticIdentity.publicKey)
			assertNil(t, err)
			hiOnLo, err := lo.NewPeer(hi.staticIdentity.publicKey)
			assertNil(t, err)
			loOnHi.Start()
			hiOnLo.Start()

			// Both initiate; SendHandshakeInitiation stamps
			// lastSentHandshake before creating the message.
			initiate := func(p *Peer, d *Device) *MessageInitiation {
				p.handshake.mutex.Lock()
				p.handshake.lastSentHandshake = time.Now().Add(-tc.sentAgo)
				p.handshake.mutex.Unlock()
				msg, err := d.CreateMessageInitiation(p)
				assertNil(t, err)
				return msg
			}
			fromHi := initiate(loOnHi, hi)
			fromLo := initiate(hiOnLo, lo)

			// The crossed messages arrive.
			gotOnLo := lo.ConsumeMessageInitiation(fromHi)
			gotOnHi := hi.ConsumeMessageInitiation(fromLo)
			if gotOnLo != hiOnLo {
				t.Fatalf("the lower key did not consume the higher key's initiation")
			}
			if tc.crossed != (gotOnHi == nil) {
				t.Fatalf("higher key consumed the crossed initiation: %v, want %v", gotOnHi != nil, !tc.crossed)
			}
			if !tc.crossed {
				return // both responders, as upstream: the retry sorts it out
			}

			// lo answers hi's initiation; hi's initiation is still
			// outstanding, so the answer completes it.
			resp, err := lo.CreateMessageResponse(hiOnLo)
			assertNil(t, err)
			if hi.ConsumeMessageResponse(resp) != loOnHi {
				t.Fatal("the higher key could not consume the response to its initiation")
			}
			assertNil(t, loOnHi.BeginSymmetricSession())
			assertNil(t, hiOnLo.BeginSymmetricSession())
			send := loOnHi.keypairs.Current()
			recv := hiOnLo.keypairs.next.Load()
			if send == nil || recv == nil || send.localIndex != recv.remoteIndex || send.remoteIndex != recv.localIndex {
				t.Fatalf("no matching session: initiator's current %v, responder's next %v", send, recv)
			}
		})
	}
}
