//go:build !linux

package overlay

import (
	"errors"
	"net/netip"

	"golang.zx2c4.com/wireguard/tun"
)

func createKernelTUN(name string, mtu int, addr netip.Addr, prefix netip.Prefix) (tun.Device, error) {
	return nil, errors.New("TUN mode is only implemented on Linux")
}
