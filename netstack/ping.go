package netstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// ErrNoEchoReply is Ping's error when no reply came before its context
// ended.
var ErrNoEchoReply = errors.New("no echo reply")

// Ping sends one ICMP echo request with size bytes of payload from this
// host's overlay address to dst, through the overlay, and waits for the
// matching reply (same identifier, sequence and payload) until ctx is
// done. It returns the round-trip time, or ErrNoEchoReply (wrapped) when
// ctx ended first. The policy is the caller's to check: the stack sends
// what it is asked to, and dst's host judges it.
func (s *Stack) Ping(ctx context.Context, dst netip.Addr, seq uint16, size int) (time.Duration, error) {
	if !dst.Is4() {
		return 0, fmt.Errorf("ping %v: not an IPv4 address", dst)
	}
	if !s.group.enter() {
		return 0, fmt.Errorf("ping %v: %w", dst, net.ErrClosed)
	}
	defer s.group.leave()
	var wq waiter.Queue
	ep, terr := s.ip.NewEndpoint(icmp.ProtocolNumber4, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return 0, fmt.Errorf("ping %v: %s", dst, terr)
	}
	defer ep.Close()
	entry, readable := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	if terr := ep.Connect(tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(dst.As4())}); terr != nil {
		return 0, fmt.Errorf("ping %v: %s", dst, terr)
	}

	req := make([]byte, header.ICMPv4MinimumSize+size)
	h := header.ICMPv4(req)
	h.SetType(header.ICMPv4Echo)
	h.SetSequence(seq) // the endpoint sets the identifier and the checksum
	rand.Read(req[header.ICMPv4MinimumSize:])
	sent := time.Now()
	if _, terr := ep.Write(bytes.NewReader(req), tcpip.WriteOptions{}); terr != nil {
		return 0, fmt.Errorf("ping %v: send: %s", dst, terr)
	}
	var buf bytes.Buffer
	for {
		buf.Reset()
		_, terr := ep.Read(&buf, tcpip.ReadOptions{})
		if _, empty := terr.(*tcpip.ErrWouldBlock); empty {
			select {
			case <-readable:
				continue
			case <-ctx.Done():
				return 0, fmt.Errorf("ping %v: %w", dst, ErrNoEchoReply)
			case <-s.ctx.Done():
				return 0, fmt.Errorf("ping %v: %w", dst, net.ErrClosed)
			}
		}
		if terr != nil {
			return 0, fmt.Errorf("ping %v: %s", dst, terr)
		}
		rtt := time.Since(sent)
		reply := header.ICMPv4(buf.Bytes())
		if len(reply) >= header.ICMPv4MinimumSize && reply.Type() == header.ICMPv4EchoReply &&
			reply.Sequence() == seq && bytes.Equal(reply.Payload(), req[header.ICMPv4MinimumSize:]) {
			return rtt, nil
		}
		// A late reply to an earlier request on this identifier: not ours.
	}
}
