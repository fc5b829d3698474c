package overlay

import (
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// createKernelTUN makes the kernel interface of TUN mode: wireguard-go's
// TUN device (with its offloads: TSO/GSO, checksum), the host's overlay
// address with the overlay's prefix length (so the kernel routes the whole
// overlay prefix to it), and up. Plain ioctls on an AF_INET socket: no
// netlink library and no `ip` binary needed. The interface is not
// persistent: it goes away, address and route with it, when the device is
// closed or the process dies.
func createKernelTUN(name string, mtu int, addr netip.Addr, prefix netip.Prefix) (tun.Device, error) {
	dev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("create TUN interface %s (TUN mode needs root or CAP_NET_ADMIN): %w", name, err)
	}
	if real, err := dev.Name(); err == nil {
		name = real
	}
	if err := configureInterface(name, addr, prefix); err != nil {
		dev.Close()
		return nil, fmt.Errorf("configure interface %s: %w", name, err)
	}
	// The overlay is IPv4: no link-local IPv6 chatter into WireGuard.
	// Best effort: a kernel without IPv6 has nothing to switch off.
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0)
	return dev, nil
}

func configureInterface(name string, addr netip.Addr, prefix netip.Prefix) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	a := addr.As4()
	if err := ifr.SetInet4Addr(a[:]); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
		return fmt.Errorf("set address %s: %w", addr, err)
	}
	m := [4]byte{}
	for i := 0; i < prefix.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	ifr, _ = unix.NewIfreq(name)
	if err := ifr.SetInet4Addr(m[:]); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr); err != nil {
		return fmt.Errorf("set netmask /%d: %w", prefix.Bits(), err)
	}
	ifr, _ = unix.NewIfreq(name)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("read flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up: %w", err)
	}
	return nil
}
