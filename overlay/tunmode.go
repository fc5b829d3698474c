package overlay

import (
	"fmt"

	"github.com/nodewire/nodewire/peers"
)

// modeOf is how this host joins: the peer file's `mode:` for it, which
// --mode, when given, must agree with (the other hosts' tools read the
// file, so it must say what this host really is).
func modeOf(cfg Config, f *peers.File, self *peers.Peer) (peers.Mode, error) {
	m := self.Mode
	if cfg.Mode != "" {
		flag, err := peers.ParseMode(cfg.Mode)
		if err != nil || flag == peers.ModeWireGuard {
			return 0, fmt.Errorf("--mode %q: want userspace or tun", cfg.Mode)
		}
		if flag != m {
			return 0, fmt.Errorf("%s:%d: peers.%s.mode: is %s but overlayd runs with --mode %s: set `mode: %s` on the peer (overlayctl show and erl-inetrc read it)",
				f.Name, self.Line, self.Name, m, flag, flag)
		}
	}
	if m == peers.ModeWireGuard {
		return 0, fmt.Errorf("%s:%d: peers.%s.mode: wireguard means the host runs the standard WireGuard tools (overlayctl wg-config), not overlayd",
			f.Name, self.Line, self.Name)
	}
	return m, nil
}

// writeInetrc writes the Erlang inetrc for this host, if asked to, with an
// atomic replace so a node starting at that moment reads a whole file.
func (d *Daemon) writeInetrc(f *peers.File, self *peers.Peer) error {
	if d.cfg.Inetrc == "" {
		return nil
	}
	domain := d.cfg.InetrcDomain
	if domain == "" {
		domain = peers.DefaultDomain
	}
	if err := peers.CheckDomain(domain); err != nil {
		return fmt.Errorf("--inetrc-domain: %w", err)
	}
	if err := peers.WriteFileAtomic(d.cfg.Inetrc, f.Inetrc(self, d.mode, domain), 0o644); err != nil {
		return fmt.Errorf("--inetrc %s: %w", d.cfg.Inetrc, err)
	}
	return nil
}
