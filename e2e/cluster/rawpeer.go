package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// RawPeer is a host that runs stock wireguard-go (Debian's package, not
// the patched in-repo copy this module builds with) on a kernel TUN
// device, with the Linux TCP/IP stack behind it: a WireGuard peer that
// obeys no overlayd, for tests that play
// an adversary (raw packets, forged addresses, floods) or a plain `wg`
// peer.
type RawPeer struct {
	*Host
	Dev     string // TUN device and UAPI name (unique per run: the UAPI socket dir is shared)
	Address netip.Addr
	Process *Process
}

// RawPeerTarget is a peer the raw peer talks to.
type RawPeerTarget struct {
	PublicKey string // base64
	Endpoint  netip.AddrPort
	Allowed   netip.Prefix
}

// StartRawPeer starts `wireguard-go -f` inside h with the private key in
// keyFile (base64), gives the device addr/32 and a route to overlay, and
// configures targets with `wg set`. wgGo is the wireguard-go binary.
func StartRawPeer(h *Host, wgGo, keyFile string, addr netip.Addr, overlay netip.Prefix, targets []RawPeerTarget) (*RawPeer, error) {
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	dev := "nwa" + hex.EncodeToString(rnd[:])
	p, err := h.Start("wireguard-go", []string{wgGo, "-f", dev}, []string{"LOG_LEVEL=verbose"})
	if err != nil {
		return nil, err
	}
	rp := &RawPeer{Host: h, Dev: dev, Address: addr, Process: p}
	sock := filepath.Join("/var/run/wireguard", dev+".sock")
	h.c.t.Cleanup(func() { _ = os.Remove(sock) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("wireguard-go exited:\n%s", p.Tail(20))
		}
		_, err := os.Stat(sock)
		return err == nil, nil
	}); err != nil {
		return nil, fmt.Errorf("%s: wireguard-go not ready: %w", h.Name, err)
	}
	set := []string{"wg", "set", dev, "private-key", keyFile, "listen-port", "51820"}
	for _, t := range targets {
		set = append(set, "peer", t.PublicKey, "endpoint", t.Endpoint.String(), "allowed-ips", t.Allowed.String())
	}
	for _, argv := range [][]string{
		set,
		{"ip", "addr", "add", netip.PrefixFrom(addr, 32).String(), "dev", dev},
		{"ip", "link", "set", dev, "mtu", "1420", "up"},
		{"ip", "route", "add", overlay.String(), "dev", dev},
	} {
		if _, err := h.Exec(ctx, argv...); err != nil {
			return nil, err
		}
	}
	return rp, nil
}
