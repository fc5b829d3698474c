package overlay

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nodewire/nodewire/overlay/tcpbind"
	"github.com/nodewire/nodewire/peers"
)

// wgPeer is what the WireGuard device knows of one peer: the part of a
// peers.Peer that UAPI can express, with the endpoint already resolved.
type wgPeer struct {
	Key       peers.Key
	Endpoint  netip.AddrPort // zero: none (the peer dials us)
	TCP       string         // tcp_endpoint "host:port", dialed by tcpbind; "": none
	TCPOnly   bool           // transport: tcp
	Keepalive time.Duration
	Allowed   netip.Prefix // the peer's /32: cryptokey routing makes its inner source address authentic
}

// desiredPeers is the device configuration for the peers a host
// configures: its partners (peers.File.Partners), the hosts the policy lets
// it exchange packets with. endpoints holds the resolved endpoint of each
// peer name; a peer missing from it has none.
func desiredPeers(partners []*peers.Peer, endpoints map[string]netip.AddrPort) map[peers.Key]wgPeer {
	want := make(map[peers.Key]wgPeer, len(partners))
	for _, p := range partners {
		want[p.PublicKey] = wgPeer{
			Key:       p.PublicKey,
			Endpoint:  endpoints[p.Name],
			TCP:       p.TCPEndpoint,
			TCPOnly:   p.Transport == peers.TransportTCP,
			Keepalive: p.Keepalive,
			Allowed:   netip.PrefixFrom(p.Address, p.Address.BitLen()),
		}
	}
	return want
}

// endpoint is the UAPI endpoint value: "ip:port" for UDP, and with a TCP
// endpoint the forms tcpbind.Bind.ParseEndpoint takes.
func (w wgPeer) endpoint() string {
	switch {
	case w.TCP != "" && (w.TCPOnly || !w.Endpoint.IsValid()):
		return tcpbind.TCPPrefix + w.TCP
	case w.TCP != "":
		return w.Endpoint.String() + "," + tcpbind.TCPPrefix + w.TCP
	case w.Endpoint.IsValid():
		return w.Endpoint.String()
	}
	return ""
}

// deviceUAPI is the device-level part of the configuration, set once.
func deviceUAPI(private peers.Key, listenPort uint16) string {
	return fmt.Sprintf("private_key=%s\nlisten_port=%d\n", private.Hex(), listenPort)
}

// uapiDiff turns the change from have to want into UAPI set operations, like
// `wg syncconf`: peers that did not change are not mentioned, so their
// sessions survive; a peer whose endpoint was not changed in the file keeps
// the endpoint WireGuard learned by roaming. Output is sorted by key so it is
// deterministic.
func uapiDiff(have, want map[peers.Key]wgPeer) string {
	// Only the peers the difference names are sorted: a reload adding one
	// peer to 10,000 sorts one key, not 20,000.
	var gone, set []peers.Key
	for k := range have {
		if _, ok := want[k]; !ok {
			gone = append(gone, k)
		}
	}
	for k, w := range want {
		if h, existed := have[k]; !existed || h != w {
			set = append(set, k)
		}
	}
	return writeUAPIDiff(have, want, gone, set)
}

// uapiDiffOf is uapiDiff(have, want) when only the entries of keys may
// differ (partnerChange.keys): it looks at those alone.
func uapiDiffOf(have, want map[peers.Key]wgPeer, keys []peers.Key) string {
	sortKeys(keys)
	var gone, set []peers.Key
	for _, k := range slices.Compact(keys) {
		h, existed := have[k]
		w, wanted := want[k]
		switch {
		case existed && !wanted:
			gone = append(gone, k)
		case wanted && (!existed || h != w):
			set = append(set, k)
		}
	}
	return writeUAPIDiff(have, want, gone, set)
}

// writeUAPIDiff writes the removal of gone and the setting of set, each
// sorted by key so that the output is deterministic.
func writeUAPIDiff(have, want map[peers.Key]wgPeer, gone, set []peers.Key) string {
	sortKeys(gone)
	sortKeys(set)
	var b strings.Builder
	for _, k := range gone {
		fmt.Fprintf(&b, "public_key=%s\nremove=true\n", k.Hex())
	}
	for _, k := range set {
		w := want[k]
		h, existed := have[k]
		fmt.Fprintf(&b, "public_key=%s\n", k.Hex())
		if existed {
			b.WriteString("update_only=true\n")
		}
		if ep := w.endpoint(); ep != "" && (!existed || h.endpoint() != ep) {
			fmt.Fprintf(&b, "endpoint=%s\n", ep)
		}
		if !existed || h.Keepalive != w.Keepalive {
			fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(w.Keepalive/time.Second))
		}
		if !existed || h.Allowed != w.Allowed {
			fmt.Fprintf(&b, "replace_allowed_ips=true\nallowed_ip=%s\n", w.Allowed)
		}
	}
	return b.String()
}

func sortKeys(keys []peers.Key) {
	slices.SortFunc(keys, func(a, b peers.Key) int { return bytes.Compare(a[:], b[:]) })
}
