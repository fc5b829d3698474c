package overlay

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
)

// The WireGuard device is the daemon's to close, after the data plane: the
// plane's Close hands the device the resets of every connection it ends,
// and they must leave before the device stops. Two things in wireguard-go
// stand in the way. It closes the whole device (bind first) as soon as its
// TUN's Read fails, which the plane's Close makes happen; and a packet it
// has read is still being encrypted and sent for a while after. So the
// device reads through deviceTUN, which holds that failure back until the
// daemon closes the device, and the daemon closes it once the bind has
// been quiet for drainIdle (drain).
const (
	drainIdle = 50 * time.Millisecond // no Send for this long: what the device read has left
	drainMax  = time.Second           // the longest Close waits for that
)

// deviceTUN is the plane's TUN device as the WireGuard device sees it. When
// the plane's device fails (the plane closed it, or a kernel TUN went away)
// Read parks until Close (which device.Close calls), then reports the
// failure. parked tells the daemon that the device has read everything.
type deviceTUN struct {
	tun.Device
	parked    chan struct{} // closed when Read has met the plane device's failure
	parkOnce  sync.Once
	closed    chan struct{} // closed by Close
	closeOnce sync.Once
	failed    error // the failure, returned after Close; set only by the reader
}

func newDeviceTUN(dev tun.Device) *deviceTUN {
	return &deviceTUN{Device: dev, parked: make(chan struct{}), closed: make(chan struct{})}
}

// Read implements tun.Device. wireguard-go has one reader.
func (t *deviceTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if t.failed != nil {
		return 0, t.park()
	}
	n, err := t.Device.Read(bufs, sizes, offset)
	if err == nil || errors.Is(err, tun.ErrTooManySegments) {
		return n, err
	}
	t.failed = err
	if n > 0 {
		return n, nil // these first; the failure on the next Read
	}
	return 0, t.park()
}

func (t *deviceTUN) park() error {
	t.parkOnce.Do(func() { close(t.parked) })
	<-t.closed
	return t.failed
}

// Close implements tun.Device: it closes the plane's device (a second close
// of it is a no-op) and releases a parked Read.
func (t *deviceTUN) Close() error {
	err := t.Device.Close()
	t.closeOnce.Do(func() { close(t.closed) })
	return err
}

// quietBind is the device's bind, counting Sends so that the daemon can
// tell when the device has stopped sending.
type quietBind struct {
	conn.Bind
	busy  atomic.Int32  // Sends in progress
	sends atomic.Uint64 // Sends begun
}

// Send implements conn.Bind.
func (b *quietBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	b.busy.Add(1)
	b.sends.Add(1)
	defer b.busy.Add(-1)
	return b.Bind.Send(bufs, ep)
}

// drain waits, up to drainMax, until the device has read all the plane
// queued (Read parked) and then sent nothing for drainIdle.
func drain(t *deviceTUN, b *quietBind) {
	deadline := time.NewTimer(drainMax)
	defer deadline.Stop()
	select {
	case <-t.parked:
	case <-deadline.C:
		return
	}
	tick := time.NewTicker(drainIdle / 10)
	defer tick.Stop()
	last, quietSince := b.sends.Load(), time.Now()
	for {
		select {
		case <-deadline.C:
			return
		case now := <-tick.C:
			if n := b.sends.Load(); n != last || b.busy.Load() > 0 {
				last, quietSince = n, now
			} else if now.Sub(quietSince) >= drainIdle {
				return
			}
		}
	}
}
