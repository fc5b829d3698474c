package overlay

import (
	"log/slog"
	"os"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/nodewire/nodewire/overlay/udpbind"
)

// bindEnv names a hidden knob: NODEWIRE_BIND=std runs wireguard-go's
// conn.StdNetBind instead of udpbind, so the two can be measured against
// each other in one run (e2e/bench -std-bind; udpbind's package doc has
// the numbers). It is not a flag: there is no reason to run it otherwise.
const bindEnv = "NODEWIRE_BIND"

// newBind is the WireGuard device's UDP bind.
func newBind(log *slog.Logger) conn.Bind {
	if os.Getenv(bindEnv) == "std" {
		log.Info("WireGuard bind: conn.StdNetBind (" + bindEnv + "=std)")
		return conn.NewDefaultBind()
	}
	return udpbind.New()
}
