//go:build !linux

package overlay

import (
	"errors"
	"net/netip"
)

// routeMTU is Linux only: elsewhere the conservative default applies.
func routeMTU(netip.Addr) (int, error) {
	return 0, errors.New("route MTU: not supported on this system")
}

// routeLookup is routeMTU: there is nothing to look up.
func routeLookup() func(netip.Addr) (int, error) {
	return routeMTU
}
