package main

// What Erlang needs to name and reach nodes: erl-inetrc (an inetrc naming
// every peer PEER.nodewire, for any mode) and show's Erlang lines for hosts
// whose nodes listen on the overlay address (TUN mode, standard WireGuard).

import (
	"fmt"
	"strings"

	"github.com/nodewire/nodewire/peers"
)

// showTUNText is show's Erlang section for a host whose nodes listen on its
// overlay address: TUN mode, or a standard WireGuard peer.
func showTUNText(p *peers.Peer) string {
	addr := p.Address.String()
	var b strings.Builder
	if p.Mode == peers.ModeWireGuard {
		fmt.Fprintf(&b, "\n# This host runs the standard WireGuard tools, not overlayd: its configuration\n# is `overlayctl wg-config --file F %s`. The other hosts enforce the policy.\n", p.Name)
	}
	fmt.Fprintf(&b, `
# Erlang on this host (%s mode): epmd and nodes listen on the overlay address only.
export ERL_EPMD_ADDRESS=%s
erl -name app@%s -kernel inet_dist_use_interface '%s'
# Start epmd after the interface is up (it binds %s). If systemd's epmd.socket
# is enabled, add a drop-in (configs/epmd.socket.d/nodewire.conf) with
# ListenStream= then ListenStream=127.0.0.1:4369, ListenStream=%s:4369 and
# FreeBind=yes, or disable it (systemctl disable --now epmd.socket).
`, p.Mode, addr, addr, peers.ErlangTuple(p.Address), addr, addr)
	return b.String()
}

// namesText is the part of show that names nodes by peer name, the same on
// every host whatever its mode. Commented, so scripts reading the export
// and erl lines above see one way only.
func namesText(file string, p *peers.Peer) string {
	return fmt.Sprintf(`
# Or name nodes by peer name, the same on every host (userspace and TUN alike):
#   overlayctl erl-inetrc --file %s --self %s > /etc/nodewire/inetrc
#   (or overlayd --inetrc /etc/nodewire/inetrc keeps it current on reload)
#   export ERL_INETRC=/etc/nodewire/inetrc
#   erl -name app@%s.%s ... (flags as above)
`, file, p.Name, strings.ToLower(p.Name), peers.DefaultDomain)
}

func cmdErlInetrc(e *env, args []string) error {
	fs := newFlags(e, "erl-inetrc", "--file F --self NAME [--mode userspace|tun] [--domain D] [--out PATH]",
		`Prints (or writes, atomically, with --out) an Erlang inetrc for host NAME:
{lookup, [file, native]} and one {host, Addr, ["PEER.DOMAIN"]} per peer, Addr
being what NAME's nodes dial: the peer's face in userspace mode, its overlay
address in TUN mode. With ERL_INETRC pointing at it, every node can be named
app@PEER.DOMAIN on every host.`)
	file := fs.file()
	self := fs.String("self", "", "the host the file is for (required)")
	modeFlag := fs.String("mode", "", "userspace or tun (default: NAME's mode in the peer file)")
	domain := fs.String("domain", peers.DefaultDomain, "domain of the names")
	outPath := fs.String("out", "", "write here instead of stdout")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	if err := fs.required("file", "self"); err != nil {
		return err
	}
	if err := peers.CheckDomain(*domain); err != nil {
		return fs.usageError("--domain: %v", err)
	}
	f, p, mode, err := fs.loadPeerMode(*file, *self, *modeFlag)
	if err != nil {
		return err
	}
	return e.writeOut(*outPath, f.Inetrc(p, mode, *domain))
}

func cmdErlangHosts(e *env, args []string) error {
	fs := newFlags(e, "erlang-hosts", "--file F --self NAME [--mode userspace|tun] [--domain D] [-o PATH]",
		`Prints (or writes, atomically, with -o) a .hosts.erlang for host NAME: one
quoted atom per host whose epmd NAME may reach per the policy (NAME itself
included), so that net_adm:world() and libcluster's ErlangHosts strategy find
every node NAME may connect to. Hosts are named as nodes name them: by the
address NAME's nodes dial (faces in userspace mode, overlay addresses in TUN
mode), or with --domain by peer name, PEER.D, as with erl-inetrc.`)
	file := fs.file()
	self := fs.String("self", "", "the host the file is for (required)")
	modeFlag := fs.String("mode", "", "userspace or tun (default: NAME's mode in the peer file)")
	domain := fs.String("domain", "", "name hosts PEER.D, as an inetrc from erl-inetrc does (default: by address)")
	outPath := fs.String("o", "", "write here instead of stdout")
	fs.StringVar(outPath, "out", "", "same as -o")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	if err := fs.required("file", "self"); err != nil {
		return err
	}
	if *domain != "" {
		if err := peers.CheckDomain(*domain); err != nil {
			return fs.usageError("--domain: %v", err)
		}
	}
	f, p, mode, err := fs.loadPeerMode(*file, *self, *modeFlag)
	if err != nil {
		return err
	}
	return e.writeOut(*outPath, f.HostsErlang(p, mode, *domain))
}

// loadPeerMode loads the file and NAME in it, and the mode NAME's Erlang
// files are for: modeFlag if given, else NAME's mode in the file.
func (fs *cmdFlags) loadPeerMode(file, self, modeFlag string) (*peers.File, *peers.Peer, peers.Mode, error) {
	f, p, err := fs.loadPeer(file, self)
	if err != nil {
		return nil, nil, 0, err
	}
	if modeFlag == "" {
		return f, p, p.Mode, nil
	}
	m, err := peers.ParseMode(modeFlag)
	if err != nil {
		return nil, nil, 0, fs.usageError("--mode: %v", err)
	}
	return f, p, m, nil
}

// writeOut writes an Erlang file to stdout, or atomically to path.
func (e *env) writeOut(path string, text []byte) error {
	if path == "" {
		_, err := e.stdout.Write(text)
		return err
	}
	return peers.WriteFileAtomic(path, text, 0o644)
}
