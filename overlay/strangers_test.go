package overlay

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/nodewire/nodewire/peers"
)

// A dropped handshake is logged once per endpoint per strangerLogEvery,
// naming the peer of the file at that endpoint when the policy is why.
func TestStrangersLog(t *testing.T) {
	f, err := peers.Parse("s.yaml", []byte(`overlay: {prefix: 10.91.0.0/16}
networks:
  lab: {prefix: 10.91.1.0/24}
  far: {prefix: 10.91.2.0/24}
peers:
  a: {network: lab, public_key: QjymiqCIuDApl2TzlrhKdwo9IxbBMjTroG0Flsln/XI=, address: 10.91.1.1, endpoint: 192.0.2.1:51820}
  b: {network: lab, public_key: YEBb8v2Ra2dbW5FahRYJ09pWg+GjNN0G/HtCOmt0MNs=, address: 10.91.1.2, endpoint: 192.0.2.2:51820}
  c: {network: far, public_key: xd7PDUbHFkyLnt6QYsXrX4poAcFNAGKVS/0cG2ypShY=, address: 10.91.2.1, endpoint: 192.0.2.3:51820}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, endpoint, want string // want "": nothing logged
	}{
		{"a peer the policy keeps out", "192.0.2.3:51820", `msg="wireguard: refused handshake" from=c endpoint=192.0.2.3:51820 reason="no WireGuard peer here: the policy lets neither c (far) nor b (lab) open anything to the other"`},
		{"as an IPv4-mapped address", "[::ffff:192.0.2.3]:51820", `from=c`},
		{"a partner: WireGuard's business", "192.0.2.1:51820", ""},
		{"no peer at that endpoint", "198.51.100.7:4000", `msg="wireguard: refused handshake" endpoint=198.51.100.7:4000 reason="not from a WireGuard peer of this host`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			s := &strangers{log: slog.New(slog.NewTextHandler(&buf, nil))}
			s.setSnapshot(&peers.Snapshot{File: f, Self: f.Peer("b")})
			s.refused(tt.endpoint)
			s.refused(tt.endpoint) // within strangerLogEvery: not again
			if n, want := s.refusals()["c"], strings.Count(tt.want, "from=c"); n != uint64(2*want) {
				t.Errorf("counted %d refused handshakes from c, want %d", n, 2*want)
			}
			got := buf.String()
			if tt.want == "" && got != "" || tt.want != "" && (!strings.Contains(got, tt.want) || strings.Count(got, "\n") != 1) {
				t.Errorf("logged %q, want once %q", got, tt.want)
			}
		})
	}
}

// Spoofed endpoints do not flood the log: strangerLogBudget lines per
// strangerLogEvery in all.
func TestStrangersLogBudget(t *testing.T) {
	f, err := peers.Parse("s.yaml", []byte("overlay: {prefix: 10.91.0.0/16}\nnetworks:\n  lab: {prefix: 10.91.1.0/24}\npeers:\n  a: {network: lab, public_key: QjymiqCIuDApl2TzlrhKdwo9IxbBMjTroG0Flsln/XI=, address: 10.91.1.1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	s := &strangers{log: slog.New(slog.NewTextHandler(&buf, nil))}
	s.setSnapshot(&peers.Snapshot{File: f, Self: f.Peer("a")})
	for i := range 1000 {
		s.refused(fmt.Sprintf("198.51.%d.%d:4000", i/250, i%250))
	}
	if n := strings.Count(buf.String(), "\n"); n != strangerLogBudget {
		t.Errorf("%d lines for 1000 spoofed endpoints, want %d", n, strangerLogBudget)
	}
}
