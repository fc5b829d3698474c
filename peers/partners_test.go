package peers_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/nodewire/nodewire/peers"
)

// partnersFixture: payments reach each other; monitoring reaches payments'
// Erlang ports one way; ops and lab reach each other on 22 (between); the
// rule naming db-1 lets it alone reach lab; store reaches nobody and is
// reached by nobody.
const partnersFixture = `overlay:
  prefix: 10.77.0.0/16
networks:
  payments:   {prefix: 10.77.1.0/24}
  monitoring: {prefix: 10.77.2.0/24}
  ops:        {prefix: 10.77.3.0/24}
  lab:        {prefix: 10.77.4.0/24}
  store:      {prefix: 10.77.5.0/24}
interconnect:
  - from: monitoring
    to: payments
    ports: [erlang]
  - between: [ops, lab]
    ports: [22]
  - from: db-1
    to: lab
peers:
  pay-1: {network: payments, public_key: QjymiqCIuDApl2TzlrhKdwo9IxbBMjTroG0Flsln/XI=, address: 10.77.1.1}
  pay-2: {network: payments, public_key: YEBb8v2Ra2dbW5FahRYJ09pWg+GjNN0G/HtCOmt0MNs=, address: 10.77.1.2, mode: tun}
  mon-1: {network: monitoring, public_key: xd7PDUbHFkyLnt6QYsXrX4poAcFNAGKVS/0cG2ypShY=, address: 10.77.2.1}
  ops-1: {network: ops, public_key: OZyoyjJ1/Ddv7UX/ZYGx1lAHKrt60eOXgZdb5dznlUk=, address: 10.77.3.1}
  lab-1: {network: lab, public_key: 2Pz6FpTQtDKqVb7uGWZ1kL3cHmHkfXyZbNpNn5tWq0k=, address: 10.77.4.1}
  db-1:  {network: store, public_key: cGxmT2w3YmR5dGJmSm9sM2d4b0d5V0VHbGJ2eXdNZkQ=, address: 10.77.5.1}
  db-2:  {network: store, public_key: U3RvcmUyS2V5S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2U=, address: 10.77.5.2}
`

func names(ps []*peers.Peer) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// Partners is who a host needs a WireGuard peer for: everyone it may open
// something to or that may open something to it.
func TestPartners(t *testing.T) {
	f, err := peers.Parse("partners.yaml", []byte(partnersFixture))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		self string
		want []string
		why  string
	}{
		{"pay-1", []string{"pay-2", "mon-1"}, "same network; monitoring reaches payments one way, so pay-1 needs mon-1 to answer"},
		{"mon-1", []string{"pay-1", "pay-2"}, "one-way allow, source side"},
		{"ops-1", []string{"lab-1"}, "between"},
		{"lab-1", []string{"ops-1", "db-1"}, "between, and a rule naming a peer"},
		{"db-1", []string{"lab-1", "db-2"}, "a rule naming db-1, and its own network"},
		{"db-2", []string{"db-1"}, "the rule names db-1, not its network"},
	} {
		t.Run(tt.self, func(t *testing.T) {
			got := names(f.Partners(f.Peer(tt.self)))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Partners(%s) = %v, want %v (%s)", tt.self, got, tt.want, tt.why)
			}
			for _, p := range f.Peers {
				if p.Name == tt.self {
					continue
				}
				self := f.Peer(tt.self)
				in := slices.Contains(tt.want, p.Name)
				if f.Exchange(self, p) != in || f.Exchange(p, self) != in {
					t.Errorf("Exchange(%s, %s) = %v, Exchange(%s, %s) = %v, want %v both", tt.self, p.Name, f.Exchange(self, p), p.Name, tt.self, f.Exchange(p, self), in)
				}
			}
		})
	}
}

// HostsErlang lists the hosts whose epmd self may reach, self included,
// as nodes name their host: the dialled address, or the name under a
// domain.
func TestHostsErlang(t *testing.T) {
	f, err := peers.Parse("partners.yaml", []byte(partnersFixture))
	if err != nil {
		t.Fatal(err)
	}
	const head = "% .hosts.erlang for "
	for _, tt := range []struct {
		name, self string
		mode       peers.Mode
		domain     string
		want       string
	}{
		{"one-way allow, source side", "mon-1", peers.ModeUserspace, "",
			"'127.77.1.1'.\n'127.77.1.2'.\n'127.77.2.1'.\n"},
		{"one-way allow, target side: no epmd of mon-1", "pay-1", peers.ModeUserspace, "",
			"'127.77.1.1'.\n'127.77.1.2'.\n"},
		{"TUN mode dials overlay addresses", "mon-1", peers.ModeTUN, "",
			"'10.77.1.1'.\n'10.77.1.2'.\n'10.77.2.1'.\n"},
		{"names under a domain, whatever the mode", "mon-1", peers.ModeTUN, "nodewire",
			"'pay-1.nodewire'.\n'pay-2.nodewire'.\n'mon-1.nodewire'.\n"},
		{"a rule on port 22 only: no epmd across", "ops-1", peers.ModeUserspace, "",
			"'127.77.3.1'.\n"},
		{"a rule with every port covers epmd", "db-1", peers.ModeUserspace, "overlay.example",
			"'lab-1.overlay.example'.\n'db-1.overlay.example'.\n'db-2.overlay.example'.\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := string(f.HostsErlang(f.Peer(tt.self), tt.mode, tt.domain))
			first, rest, _ := strings.Cut(got, "\n")
			if !strings.HasPrefix(first, head) {
				t.Errorf("first line %q, want a comment starting %q", first, head)
			}
			if rest != tt.want {
				t.Errorf("HostsErlang(%s, %s, %q):\n%s\nwant\n%s", tt.self, tt.mode, tt.domain, rest, tt.want)
			}
		})
	}
}
