package peerstest

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/nodewire/nodewire/peers"
)

// Peer is one peer line that Build writes: a peer of Network whose public
// key is 32 bytes of Key and whose address is 10.<octet>.<n>.<Addr>, n
// being Network's place in Build's networks (from 1). Extra is written
// inside the line's braces after the address (", endpoint: ...").
type Peer struct {
	Name, Network string
	Key           byte
	Addr          int
	Extra         string
}

// Build parses, as name, a peer file of ps: overlay 10.<octet>.0.0/16 with
// faces in 127.<octet>.0.0/16, a /24 for each of networks in order (the
// first 10.<octet>.1.0/24), and rules (YAML lines) as its interconnect.
func Build(t testing.TB, name string, octet int, networks []string, rules string, ps []Peer) *peers.File {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "overlay: {prefix: 10.%d.0.0/16, faces: 127.%d.0.0/16}\nnetworks:\n", octet, octet)
	index := map[string]int{}
	for i, n := range networks {
		index[n] = i + 1
		fmt.Fprintf(&b, "  %s: {prefix: 10.%d.%d.0/24}\n", n, octet, i+1)
	}
	if rules != "" {
		b.WriteString("interconnect:\n" + rules)
	}
	b.WriteString("peers:\n")
	for _, p := range ps {
		key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string([]byte{p.Key}), 32)))
		fmt.Fprintf(&b, "  %s: {network: %s, public_key: %s, address: 10.%d.%d.%d%s}\n",
			p.Name, p.Network, key, octet, index[p.Network], p.Addr, p.Extra)
	}
	f, err := peers.Parse(name, []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// P is Peer{name, network, key, addr, extra}, for tables.
func P(name, network string, key byte, addr int, extra string) Peer {
	return Peer{Name: name, Network: network, Key: key, Addr: addr, Extra: extra}
}
