package overlay

import (
	"runtime"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/nodewire/nodewire/overlay/idlespin"
)

// IdleSpinProcs is how many Go Ps a daemon with Config.IdleSpin set holds
// while it spins: the caller adds it to GOMAXPROCS.
func IdleSpinProcs(window time.Duration) int {
	if window <= 0 {
		return 0
	}
	return runtime.NumCPU()
}

// spinBind kicks an idle-priority spinner per CPU (package idlespin) on
// every datagram sent or received, for window after it; the spinners live
// from the bind's Open to its Close. window <= 0 returns b itself.
func spinBind(b conn.Bind, window time.Duration) conn.Bind {
	if window <= 0 {
		return b
	}
	return &spinningBind{Bind: b, window: window}
}

type spinningBind struct {
	conn.Bind
	window time.Duration

	mu   sync.Mutex
	spin *idlespin.Spinner
}

func (b *spinningBind) spinner() *idlespin.Spinner {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spin
}

func (b *spinningBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, p, err := b.Bind.Open(port)
	if err != nil {
		return fns, p, err
	}
	s := idlespin.New(IdleSpinProcs(b.window), b.window)
	b.mu.Lock()
	b.spin = s
	b.mu.Unlock()
	for i, fn := range fns {
		fns[i] = func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			n, err := fn(packets, sizes, eps)
			if n > 0 {
				s.Kick()
			}
			return n, err
		}
	}
	return fns, p, nil
}

func (b *spinningBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	b.spinner().Kick()
	return b.Bind.Send(bufs, ep)
}

func (b *spinningBind) Close() error {
	err := b.Bind.Close()
	b.mu.Lock()
	s := b.spin
	b.spin = nil
	b.mu.Unlock()
	s.Close()
	return err
}
