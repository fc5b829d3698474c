package peers

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

// CheckName reports whether s may name a network or a peer. Names become
// host names (pay-1.nodewire), so they are DNS labels: letters, digits and
// '-', at most 63 characters, not starting or ending with '-'.
func CheckName(s string) error {
	switch {
	case s == "":
		return errors.New("empty name")
	case len(s) > 63:
		return fmt.Errorf("%q is longer than 63 characters", s)
	case s[0] == '-' || s[len(s)-1] == '-':
		return fmt.Errorf("%q starts or ends with '-'", s)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%q contains %q; names use letters, digits and '-'", s, c)
		}
	}
	return nil
}

func (p *fileParser) checkName(name string, line int, path string) {
	if err := CheckName(name); err != nil {
		p.errorf(line, path, "%v", err)
	}
}

// checkNames refuses a name used for both a network and a peer, and names
// that differ only in case: rules could not tell them apart, nor could DNS.
func (p *fileParser) checkNames() {
	type named struct {
		kind, name string
		line       int
	}
	all := make([]named, 0, len(p.f.Networks)+len(p.f.Peers))
	for _, nw := range p.f.Networks {
		all = append(all, named{"network", nw.Name, nw.Line})
	}
	for _, peer := range p.f.Peers {
		all = append(all, named{"peer", peer.Name, peer.Line})
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].line < all[j].line })
	seen := make(map[string]named, len(all))
	for _, n := range all {
		key := strings.ToLower(n.name)
		first, dup := seen[key]
		if !dup {
			seen[key] = n
			continue
		}
		p.policyBroken = true
		path := join(n.kind+"s", n.name)
		if first.name == n.name {
			p.errorf(n.line, path, "name already used by %s %s (line %d)", first.kind, first.name, first.line)
		} else {
			p.errorf(n.line, path, "name differs only in case from %s %s (line %d); names are host names, which ignore case",
				first.kind, first.name, first.line)
		}
	}
}

// parseEndpoint checks "host", "host:port", "[v6]:port", "[v6]" or a bare
// IPv6 address and returns host:port with defPort filled in. The underlay
// may be IPv6 even though the overlay is not.
func parseEndpoint(s string, defPort uint16) (string, error) {
	if s == "" {
		return "", errors.New("empty endpoint; leave it out if the peer has none")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return "", fmt.Errorf("%q contains spaces", s)
	}
	host, port := s, ""
	switch a, err := netip.ParseAddr(s); {
	case err == nil:
		if a.Is4In6() {
			host = a.Unmap().String()
		}
	case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
		host = s[1 : len(s)-1]
	case strings.Contains(s, ":"):
		h, pt, err := net.SplitHostPort(s)
		if err != nil {
			return "", fmt.Errorf("%q is not host:port", s)
		}
		host, port = h, pt
		if port == "" {
			return "", fmt.Errorf("%q has an empty port; leave out the colon to use overlay.port", s)
		}
	}
	if host == "" {
		return "", fmt.Errorf("%q has an empty host", s)
	}
	if strings.HasPrefix(s, "[") {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return "", fmt.Errorf("%q: only IPv6 addresses go in brackets", s)
		}
	}
	if err := checkHost(host); err != nil {
		return "", fmt.Errorf("%q: %v", s, err)
	}
	p := defPort
	if port != "" {
		var err error
		if p, err = parsePort(port); err != nil {
			return "", fmt.Errorf("%q: port must be 1-65535", s)
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(int(p))), nil
}

// checkHost accepts an IP address or a DNS name.
func checkHost(h string) error {
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%q is not a host name or IP address", h)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q is not a host name or IP address", h)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not a host name or IP address", h)
			}
		}
	}
	// A name whose last label is numeric is a mistyped IP address
	// (10.0.0.300), not a host name.
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("%q is not a valid IP address", h)
	}
	return nil
}

// maxKeepalive is the largest keepalive WireGuard can express: a 16-bit
// count of seconds.
const maxKeepalive = 65535 * time.Second

// parseKeepalive parses a Go duration that WireGuard can carry: whole
// seconds, at most 65535s; 0 turns keepalives off.
func parseKeepalive(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a duration like 25s", s)
	case d < 0:
		return 0, fmt.Errorf("%s is negative", s)
	case d%time.Second != 0:
		return 0, fmt.Errorf("%s is not a whole number of seconds, which WireGuard needs", s)
	case d > maxKeepalive:
		return 0, fmt.Errorf("%s is longer than WireGuard's limit of 65535s", s)
	}
	return d, nil
}
