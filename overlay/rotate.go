package overlay

import (
	"fmt"
	"log/slog"

	"github.com/nodewire/nodewire/peers"
)

// Key rotation without a restart. `overlayctl rotate-key` writes a new
// private key into the key file and this host's new public key into the
// peer file. Every other host reloads the file: WireGuard there replaces
// this host's key (its connections stay open; see netstack's judgeOne).
// This host reloads last: it finds the file naming a key it does not hold,
// reads the key file again, and switches its device to the new key. Between
// the first host's reload and this one, packets between them are dropped
// and TCP retransmits them; Erlang sees a pause, not a nodedown, as long as
// it is shorter than net_ticktime.

// findSelf is load's check for a reload: when the file names a new public
// key for this host and the key file now holds the matching private key, it
// also returns that key, to switch to. Otherwise the key must not change.
func (d *Daemon) findSelf(f *peers.File) (*peers.Peer, *peers.Key, error) {
	self := f.Peer(d.cfg.Self)
	if self == nil {
		return nil, nil, fmt.Errorf("%s: no peer named %q (the --self name must be one of the file's peers)", f.Name, d.cfg.Self)
	}
	pub, err := peers.PublicKey(d.private)
	if err != nil {
		return nil, nil, err
	}
	if pub == self.PublicKey {
		return self, nil, nil
	}
	k, err := peers.LoadPrivateKey(d.cfg.PrivateKeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%s:%d: peers.%s.public_key changed; reading the new key: %w", f.Name, self.Line, self.Name, err)
	}
	newPub, err := peers.PublicKey(k)
	if err != nil {
		return nil, nil, err
	}
	if newPub != self.PublicKey {
		return nil, nil, fmt.Errorf("%s:%d: peers.%s.public_key: does not match the private key in %s (its public key is %s)",
			f.Name, self.Line, self.Name, d.cfg.PrivateKeyFile, newPub)
	}
	return self, &k, nil
}

// switchKey makes the device use k. WireGuard re-handshakes with every
// peer; sessions resume with the new key, connections stay open.
func (d *Daemon) switchKey(k *peers.Key, self *peers.Peer) error {
	if k == nil {
		return nil
	}
	if err := d.dev.IpcSet("private_key=" + k.Hex() + "\n"); err != nil {
		return fmt.Errorf("switch to the new private key: %w", err)
	}
	d.private = *k
	d.log.Info("private key rotated", slog.String("public_key", self.PublicKey.String()))
	return nil
}
