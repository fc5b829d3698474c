package peers

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Contains reports whether p allows port, given whether it is an Erlang
// distribution port registered in the target's epmd. EPMDPort always counts
// as an Erlang port, so `erlang` alone lets nodes find each other.
func (p Ports) Contains(port uint16, erlang bool) bool {
	if p.All {
		return true
	}
	if p.Erlang && (erlang || port == EPMDPort) {
		return true
	}
	for _, r := range p.Ranges {
		if r.Lo <= port && port <= r.Hi {
			return true
		}
	}
	return false
}

// String renders ports as in the file: "[erlang, 9100-9199]", or "all"
// when the rule has no ports list.
func (p Ports) String() string {
	if p.All {
		return "all"
	}
	var b strings.Builder
	b.WriteByte('[')
	if p.Erlang {
		b.WriteString("erlang")
	}
	for i, r := range p.Ranges {
		if i > 0 || p.Erlang {
			b.WriteString(", ")
		}
		b.WriteString(r.String())
	}
	b.WriteByte(']')
	return b.String()
}

// Contains reports whether port lies in r.
func (r PortRange) Contains(port uint16) bool { return r.Lo <= port && port <= r.Hi }

// String renders r as in the file: "9100" or "9100-9199".
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// ParsePortRange parses "9100" or "9100-9199", the forms of `ports:` and
// `expose:` entries, for tools that take ports on the command line.
func ParsePortRange(s string) (PortRange, error) {
	s = strings.TrimSpace(s)
	lo, hi, isRange := strings.Cut(s, "-")
	if isRange && (strings.TrimSpace(lo) == "" || strings.TrimSpace(hi) == "" || strings.Contains(hi, "-")) {
		return PortRange{}, fmt.Errorf("%q is not a port range like 9100-9199", s)
	}
	a, err := parsePort(lo)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{a, a}, nil
	}
	b, err := parsePort(hi)
	if err != nil {
		return PortRange{}, err
	}
	if b < a {
		return PortRange{}, fmt.Errorf("range %s is reversed; write %d-%d", s, b, a)
	}
	return PortRange{a, b}, nil
}

// parsePort parses a decimal TCP or UDP port, 1-65535. Decimal only: YAML's
// 0x and 0o forms have no business in a port number.
func parsePort(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty port")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a port number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%s is not a port (1-65535)", s)
	}
	return uint16(n), nil
}
