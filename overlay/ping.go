package overlay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nodewire/nodewire/netstack"
	"github.com/nodewire/nodewire/overlay/control"
)

// Ping limits. The timeout bounds one echo, and stays well inside the
// control connection's deadline.
const (
	maxPingTimeout = 20 * time.Second
	pingPayload    = 56 // bytes after the ICMP header, as ping sends
)

// Ping sends one ICMP echo request with sequence number seq from this
// host's overlay address to peer to, through the overlay, and waits up to
// timeout (0: control.DefaultPingTimeout) for the reply. It refuses, saying why,
// when to is no peer or this host, when this daemon runs in TUN mode (the
// system's ping works there), and when the policy does not let this host
// ping to: that host would not answer.
func (d *Daemon) Ping(ctx context.Context, to string, seq uint16, timeout time.Duration) (*control.PingReply, error) {
	d.mu.Lock()
	f, self := d.file, d.self
	d.mu.Unlock()
	p := f.Peer(to)
	switch {
	case p == nil:
		hint := ""
		if f.Network(to) != nil {
			hint = " (" + to + " is a network; ping takes a peer)"
		}
		return nil, fmt.Errorf("no peer %s in %s%s", to, d.cfg.PeerFile, hint)
	case p.Name == self.Name:
		return nil, fmt.Errorf("%s is this host", p.Name)
	}
	ops := d.ops()
	if ops == nil {
		return nil, fmt.Errorf("this daemon runs in TUN mode: ping %s (%s) with the system ping", p.Address, p.Name)
	}
	if dec := f.DecidePing(self, p); !dec.Allow {
		return nil, fmt.Errorf("%s may not ping %s: %s", self.Name, p.Name, dec)
	}
	if timeout <= 0 {
		timeout = control.DefaultPingTimeout
	}
	timeout = min(timeout, maxPingTimeout)
	r := &control.PingReply{
		From: self.Name, FromAddress: self.Address.String(), Peer: p.Name, Address: p.Address.String(),
		Seq: seq, Bytes: 8 + pingPayload, Timeout: timeout,
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rtt, err := ops.Ping(ctx, p.Address, seq, pingPayload)
	switch {
	case errors.Is(err, netstack.ErrNoEchoReply):
		return r, nil
	case err != nil:
		return nil, err
	}
	r.Replied, r.RTT = true, rtt
	return r, nil
}
