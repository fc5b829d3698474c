package overlay

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/peers"
)

func key(b byte) peers.Key {
	var k peers.Key
	for i := range k {
		k[i] = b
	}
	return k
}

func TestUAPIDiff(t *testing.T) {
	a := wgPeer{Key: key(1), Endpoint: netip.MustParseAddrPort("192.0.2.1:51820"), Keepalive: 25 * time.Second, Allowed: netip.MustParsePrefix("10.77.1.1/32")}
	b := wgPeer{Key: key(2), Allowed: netip.MustParsePrefix("10.77.1.2/32")}
	aMoved := a
	aMoved.Endpoint = netip.MustParseAddrPort("192.0.2.9:51820")
	aReaddressed := a
	aTCP := a
	aTCP.TCP = "a.example.net:443"
	aPinned := aTCP
	aPinned.TCPOnly = true
	aReaddressed.Allowed = netip.MustParsePrefix("10.77.1.7/32")
	set := func(ps ...wgPeer) map[peers.Key]wgPeer {
		m := map[peers.Key]wgPeer{}
		for _, p := range ps {
			m[p.Key] = p
		}
		return m
	}
	hexA, hexB := key(1).Hex(), key(2).Hex()
	tests := []struct {
		name       string
		have, want map[peers.Key]wgPeer
		out        string
	}{
		{"nothing", nil, nil, ""},
		{"unchanged peers are not mentioned", set(a, b), set(a, b), ""},
		{"add", nil, set(a),
			"public_key=" + hexA + "\nendpoint=192.0.2.1:51820\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.77.1.1/32\n"},
		{"add without endpoint", nil, set(b),
			"public_key=" + hexB + "\npersistent_keepalive_interval=0\nreplace_allowed_ips=true\nallowed_ip=10.77.1.2/32\n"},
		{"remove", set(a, b), set(a), "public_key=" + hexB + "\nremove=true\n"},
		{"endpoint change only touches the endpoint", set(a), set(aMoved),
			"public_key=" + hexA + "\nupdate_only=true\nendpoint=192.0.2.9:51820\n"},
		{"a tcp_endpoint joins the UDP one", set(a), set(aTCP),
			"public_key=" + hexA + "\nupdate_only=true\nendpoint=192.0.2.1:51820,tcp://a.example.net:443\n"},
		{"transport tcp leaves UDP out", set(aTCP), set(aPinned),
			"public_key=" + hexA + "\nupdate_only=true\nendpoint=tcp://a.example.net:443\n"},
		{"address change replaces allowed ips", set(a), set(aReaddressed),
			"public_key=" + hexA + "\nupdate_only=true\nreplace_allowed_ips=true\nallowed_ip=10.77.1.7/32\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := uapiDiff(tt.have, tt.want); got != tt.out {
				t.Errorf("uapiDiff:\n got %q\nwant %q", got, tt.out)
			}
		})
	}
}

func TestParseUAPIGet(t *testing.T) {
	text := strings.Join([]string{
		"private_key=" + key(9).Hex(),
		"listen_port=51820",
		"public_key=" + key(1).Hex(),
		"endpoint=192.0.2.1:51820",
		"last_handshake_time_sec=1700000000",
		"last_handshake_time_nsec=0",
		"rx_bytes=100",
		"tx_bytes=200",
		"allowed_ip=10.77.1.1/32",
		"public_key=" + key(2).Hex(),
		"last_handshake_time_sec=0",
		"rx_bytes=0",
		"tx_bytes=0",
		"errno=0",
	}, "\n")
	got := parseUAPIGet(text)
	if len(got) != 2 {
		t.Fatalf("got %d peers, want 2: %+v", len(got), got)
	}
	a := got[key(1)]
	if a.Endpoint != "192.0.2.1:51820" || a.Rx != 100 || a.Tx != 200 || a.LastHandshake.Unix() != 1700000000 {
		t.Errorf("peer 1: %+v", a)
	}
	if b := got[key(2)]; !b.LastHandshake.IsZero() || b.Endpoint != "" {
		t.Errorf("peer 2: %+v", b)
	}
}
