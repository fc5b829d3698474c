package peers

import "fmt"

// DefaultTCPPort is the port of a tcp_endpoint that names none: 443, the
// port firewalls that block UDP most often leave open.
const DefaultTCPPort = 443

// Transport is how WireGuard's datagrams reach a peer, the `transport:`
// field of a peer.
type Transport uint8

const (
	// TransportAuto sends over UDP and, when the peer has a tcp_endpoint
	// and no handshake completes over UDP, over TLS/TCP until UDP works
	// again.
	TransportAuto Transport = iota
	// TransportTCP always uses the peer's tcp_endpoint.
	TransportTCP
)

// ParseTransport parses a `transport:` value.
func ParseTransport(s string) (Transport, error) {
	switch s {
	case "auto", "":
		return TransportAuto, nil
	case "tcp":
		return TransportTCP, nil
	}
	return 0, fmt.Errorf("%q is not a transport: want auto or tcp", s)
}

// String is the transport as written in the file.
func (t Transport) String() string {
	if t == TransportTCP {
		return "tcp"
	}
	return "auto"
}
