package main

// wg-config: a wg-quick configuration for a standard WireGuard peer, a host
// with the stock tools and no overlayd.

import (
	"fmt"
	"strings"

	"github.com/nodewire/nodewire/peers"
)

func cmdWGConfig(e *env, args []string) error {
	fs := newFlags(e, "wg-config", "--file F NAME [--private-key FILE]",
		`Prints a wg-quick configuration for peer NAME, a host with the standard
WireGuard tools and no overlayd: its address, and the peers it may talk to
under the policy (either way), with their endpoints and keepalives. Without
--private-key the PrivateKey line is a placeholder, so the key need never
leave that host. The other hosts still enforce the policy on what it sends.`)
	file := fs.file()
	keyFile := fs.String("private-key", "", "file with NAME's private key (mode 0600), to fill in PrivateKey")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := fs.required("file"); err != nil {
		return err
	}
	f, p, err := fs.loadPeer(*file, pos[0])
	if err != nil {
		return err
	}
	privateKey := "<the private key of " + p.Name + ": wg genkey, its public key in the peer file>"
	if *keyFile != "" {
		k, err := peers.LoadPrivateKey(*keyFile)
		if err != nil {
			return err
		}
		pub, err := peers.PublicKey(k)
		if err != nil {
			return err
		}
		if pub != p.PublicKey {
			return fmt.Errorf("%s: its public key %s is not %s's (%s)", *keyFile, pub, p.Name, p.PublicKey)
		}
		privateKey = k.String()
	}
	fmt.Fprint(e.stdout, wgQuickText(f, p, privateKey))
	return nil
}

// wgQuickText is the wg-quick configuration of peer self.
func wgQuickText(f *peers.File, self *peers.Peer, privateKey string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# wg-quick configuration for %s (network %s), from %s by overlayctl wg-config.\n", self.Name, self.Network.Name, f.Name)
	fmt.Fprintf(&b, "# Erlang here: ERL_EPMD_ADDRESS=%s, erl -name app@%s; or names: overlayctl erl-inetrc --file %s --self %s --mode tun\n",
		self.Address, self.Address, f.Name, self.Name)
	b.WriteString("[Interface]\n")
	fmt.Fprintf(&b, "PrivateKey = %s\n", privateKey)
	fmt.Fprintf(&b, "Address = %s/32\n", self.Address)
	if self.Endpoint != "" {
		if i := strings.LastIndexByte(self.Endpoint, ':'); i >= 0 {
			fmt.Fprintf(&b, "ListenPort = %s\n", self.Endpoint[i+1:])
		}
	}
	b.WriteString("MTU = 1420\n")
	for _, p := range f.Peers {
		if p == self {
			continue
		}
		why := reach(f, self, p)
		if why == "" {
			continue
		}
		fmt.Fprintf(&b, "\n[Peer]\n# %s (network %s, %s mode): %s\n", p.Name, p.Network.Name, p.Mode, why)
		fmt.Fprintf(&b, "PublicKey = %s\n", p.PublicKey)
		if p.Endpoint != "" {
			fmt.Fprintf(&b, "Endpoint = %s\n", p.Endpoint)
		}
		fmt.Fprintf(&b, "AllowedIPs = %s/32\n", p.Address)
		ka := self.Keepalive // behind NAT: keep the path open from here
		if ka == 0 {
			ka = p.Keepalive
		}
		if ka != 0 {
			fmt.Fprintf(&b, "PersistentKeepalive = %d\n", int(ka.Seconds()))
		}
	}
	return b.String()
}

// reach says why a and b may talk, in either direction (a WireGuard peer
// is needed both to open connections and to answer them), or "" if the
// policy lets neither open anything to the other.
func reach(f *peers.File, a, b *peers.Peer) string {
	if a.Network == b.Network {
		return "same network " + a.Network.Name
	}
	var whys []string
	for _, r := range f.Rules {
		if covers(r, a, b) || covers(r, b, a) {
			whys = append(whys, "rule "+r.Pos()+" ("+r.String()+")")
		}
	}
	return strings.Join(whys, "; ")
}

// covers reports whether rule r lets from open connections to to.
func covers(r *peers.Rule, from, to *peers.Peer) bool {
	is := func(sel string, p *peers.Peer) bool {
		return strings.EqualFold(sel, p.Name) || strings.EqualFold(sel, p.Network.Name)
	}
	return is(r.From, from) && is(r.To, to) || r.Both && is(r.From, to) && is(r.To, from)
}
