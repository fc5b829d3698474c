package overlay

import (
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/nodewire/nodewire/netstack/hoptrace"
)

// traceTUN marks the packets WireGuard reads from and writes to the data
// plane, in a hoptrace build; otherwise it returns dev itself.
func traceTUN(dev tun.Device) tun.Device {
	if !hoptrace.Enabled {
		return dev
	}
	return tracedTUN{dev}
}

type tracedTUN struct{ tun.Device }

func (t tracedTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := t.Device.Read(bufs, sizes, offset)
	for _, s := range sizes[:n] {
		hoptrace.Mark(hoptrace.TUNRead, s)
	}
	return n, err
}

func (t tracedTUN) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		hoptrace.Mark(hoptrace.TUNWrite, len(b)-offset)
	}
	return t.Device.Write(bufs, offset)
}

// traceBind marks the datagrams WireGuard sends and receives, in a
// hoptrace build; otherwise it returns b itself.
func traceBind(b conn.Bind) conn.Bind {
	if !hoptrace.Enabled {
		return b
	}
	return tracedBind{b}
}

type tracedBind struct{ conn.Bind }

func (t tracedBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, p, err := t.Bind.Open(port)
	for i, fn := range fns {
		fns[i] = func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			n, err := fn(packets, sizes, eps)
			for _, s := range sizes[:n] {
				hoptrace.Mark(hoptrace.UDPRecv, s)
			}
			return n, err
		}
	}
	return fns, p, err
}

func (t tracedBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	for _, b := range bufs {
		hoptrace.Mark(hoptrace.UDPSend, len(b))
	}
	return t.Bind.Send(bufs, ep)
}
