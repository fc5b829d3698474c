package overlay

import (
	"fmt"

	"github.com/nodewire/nodewire/peers"
)

// writeErlangHosts writes the .hosts.erlang for this host, if asked to
// (--erlang-hosts), with an atomic replace so net_adm:world() never reads
// half a file. Hosts are named as nodes are: by peer name under the inetrc
// domain when overlayd keeps an inetrc (nodes are then app@PEER.DOMAIN),
// else by the address this host dials (peers.File.HostsErlang).
func (d *Daemon) writeErlangHosts(f *peers.File, self *peers.Peer) error {
	if d.cfg.ErlangHosts == "" {
		return nil
	}
	domain := ""
	if d.cfg.Inetrc != "" {
		domain = d.cfg.InetrcDomain
		if domain == "" {
			domain = peers.DefaultDomain
		}
	}
	if err := peers.WriteFileAtomic(d.cfg.ErlangHosts, f.HostsErlang(self, d.mode, domain), 0o644); err != nil {
		return fmt.Errorf("--erlang-hosts %s: %w", d.cfg.ErlangHosts, err)
	}
	return nil
}
