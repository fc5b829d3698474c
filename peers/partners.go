package peers

import (
	"fmt"
	"strings"
)

// Exchange reports whether the policy lets a and b exchange packets at
// all: one of them may open some connection to the other (Reaches, either
// way). A host needs a WireGuard peer for b exactly then, to open its
// connections or to answer them; without one, WireGuard drops b's packets
// before either data plane sees them, which is what both planes would do
// with them anyway (silence to a host that reaches us on no port).
func (f *File) Exchange(a, b *Peer) bool {
	return f.Reaches(a, b) || f.Reaches(b, a)
}

// Partners is the peers other than self that self exchanges packets with
// (Exchange), in file order: the WireGuard peers a host configures. In a
// large overlay split by policy this is a small part of the file.
func (f *File) Partners(self *Peer) []*Peer {
	var out []*Peer
	for _, p := range f.Peers {
		if p != self && f.Exchange(self, p) {
			out = append(out, p)
		}
	}
	return out
}

// EPMDHosts is the peers whose epmd self may ask for nodes (port
// EPMDPort), self included, in file order: the hosts net_adm:world() on
// self can find nodes on. A rule with `nodes:` still lets self reach epmd
// (for the nodes it names), so its hosts are listed, although epmd's
// NAMES, which world() sends, is refused under such a rule.
func (f *File) EPMDHosts(self *Peer) []*Peer {
	var out []*Peer
	for _, p := range f.Peers {
		if f.Decide(self, p, EPMDPort, true).Allow {
			out = append(out, p)
		}
	}
	return out
}

// HostsErlang is an Erlang `.hosts.erlang` for self in mode m: one quoted
// atom per EPMDHosts peer, as nodes name their host. With domain "" that
// is the address self dials (DialAddr: faces in userspace mode, overlay
// addresses in TUN mode), as nodes are named without an inetrc
// (app@127.77.1.1); with a domain it is the peer's name under it, as
// nodes are named with the inetrc of Inetrc (app@pay-1.nodewire).
// net_adm:world() asks each host's epmd for its nodes and pings
// Name@Host, so the host part must be the one the nodes use.
func (f *File) HostsErlang(self *Peer, m Mode, domain string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%% .hosts.erlang for %s (%s mode), from %s by nodewire: the hosts whose epmd %s may reach; regenerate, do not edit.\n",
		self.Name, m, f.Name, self.Name)
	for _, p := range f.EPMDHosts(self) {
		host := DialAddr(m, p).String()
		if domain != "" {
			host = strings.ToLower(p.Name) + "." + domain
		}
		fmt.Fprintf(&b, "'%s'.\n", host)
	}
	return []byte(b.String())
}

// Matcher finds the peers of one file in another by name, in file order,
// as a reload compares the file it applies with the last one: most edits
// add, remove or change a peer or two, so the peer looked for is mostly
// at its own index plus the shift of the last one found, and only the
// others cost a look-up by name. The zero Matcher is ready to use.
type Matcher struct{ shift int }

// Find returns the peer of in named p.Name (in any case, as File.Peer
// finds it), or nil.
func (m *Matcher) Find(in *File, p *Peer) *Peer {
	if i := p.ID + m.shift; i >= 0 && i < len(in.Peers) && in.Peers[i].Name == p.Name {
		return in.Peers[i]
	}
	o := in.Peer(p.Name)
	if o != nil {
		m.shift = o.ID - p.ID
	}
	return o
}
