package peers

import "fmt"

// Mode is how a peer's host joins the overlay, the `mode:` field of a peer.
// It decides what the host's Erlang nodes dial (a face or an overlay
// address) and which flags `overlayctl show` prints; every host reaches
// every other whatever their modes.
type Mode uint8

const (
	// ModeUserspace is overlayd's default: a userspace stack, no root, and
	// Erlang on the loopback faces.
	ModeUserspace Mode = iota
	// ModeTUN is `overlayd --mode tun`: a kernel interface with the
	// overlay address; Erlang listens on and dials overlay addresses.
	ModeTUN
	// ModeWireGuard is a host with the standard WireGuard tools and no
	// nodewire (`overlayctl wg-config`); it dials overlay addresses as a TUN
	// host does, and enforces no policy of its own.
	ModeWireGuard
)

// ParseMode parses a `mode:` value or a --mode flag.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "userspace", "":
		return ModeUserspace, nil
	case "tun":
		return ModeTUN, nil
	case "wireguard":
		return ModeWireGuard, nil
	}
	return 0, fmt.Errorf("%q is not a mode: want userspace, tun or wireguard", s)
}

// String is the mode as written in the file.
func (m Mode) String() string {
	switch m {
	case ModeTUN:
		return "tun"
	case ModeWireGuard:
		return "wireguard"
	}
	return "userspace"
}

// DialsFaces reports whether Erlang on a host in mode m reaches other hosts
// through loopback faces (userspace mode) rather than overlay addresses.
func (m Mode) DialsFaces() bool { return m == ModeUserspace }
