package peers

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultDomain is the DNS-like suffix of peer names in an Erlang inetrc:
// nodes are called app@pay-1.nodewire.
const DefaultDomain = "nodewire"

// CheckDomain checks an inetrc domain: dot-separated labels of lower-case
// letters, digits and hyphens.
func CheckDomain(d string) error {
	if d == "" || len(d) > 200 {
		return fmt.Errorf("domain %q: want a name like nodewire or overlay.example", d)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("domain %q: empty label or label starting or ending with -", d)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("domain %q: only a-z, 0-9, - and dots", d)
			}
		}
	}
	return nil
}

// DialAddr is the address Erlang on a host in mode m uses to reach peer p:
// p's loopback face in userspace mode (the local overlayd carries it from
// there), p's overlay address otherwise. A host's own name maps to where
// its own nodes listen, by the same rule.
func DialAddr(m Mode, p *Peer) netip.Addr {
	if m.DialsFaces() {
		return p.Face
	}
	return p.Address
}

// Inetrc is an Erlang inetrc file (ERL_INETRC) for a host in mode m: every
// peer's name under domain resolves to the address that host must dial, so
// every node keeps one name everywhere (app@pay-1.nodewire) whatever the
// mode of the host that dials it.
func (f *File) Inetrc(self *Peer, m Mode, domain string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%% Erlang inetrc for %s (%s mode), from %s by nodewire: regenerate, do not edit.\n", self.Name, m, f.Name)
	b.WriteString("{lookup, [file, native]}.\n")
	for _, p := range f.Peers {
		fmt.Fprintf(&b, "{host, %s, [\"%s.%s\"]}.\n", ErlangTuple(DialAddr(m, p)), strings.ToLower(p.Name), domain)
	}
	return []byte(b.String())
}

// ErlangTuple renders an IPv4 address as Erlang writes it: {10,77,1,1}.
func ErlangTuple(a netip.Addr) string {
	b := a.As4()
	parts := make([]string, 4)
	for i, x := range b {
		parts[i] = strconv.Itoa(int(x))
	}
	return "{" + strings.Join(parts, ",") + "}"
}
