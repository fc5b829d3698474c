package main

// The commands that read the peer file: check, explain and show.

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nodewire/nodewire/peers"
)

// load parses the peer file; its error lists every problem, then counts
// them.
func (c *cmdFlags) load(path string) (*peers.File, error) {
	f, err := peers.Load(path)
	if err != nil {
		var errs peers.Errors
		if errors.As(err, &errs) {
			return nil, fmt.Errorf("%w\n%s: %d %s", err, path, len(errs), plural(len(errs), "error", "errors"))
		}
		return nil, err
	}
	return f, nil
}

// peer finds name in f, or fails saying which file lacks it (and that name
// is a network, if it is one).
func (c *cmdFlags) peer(f *peers.File, path, name string) (*peers.Peer, error) {
	if p := f.Peer(name); p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("no peer %s in %s%s", name, path, networkHint(f, name))
}

// loadPeer loads the peer file at path and finds name in it.
func (c *cmdFlags) loadPeer(path, name string) (*peers.File, *peers.Peer, error) {
	f, err := c.load(path)
	if err != nil {
		return nil, nil, err
	}
	p, err := c.peer(f, path, name)
	if err != nil {
		return nil, nil, err
	}
	return f, p, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func cmdCheck(e *env, args []string) error {
	fs := newFlags(e, "check", "--file F",
		`Validates the peer file and runs its tests, as overlayd does on every load.
Prints every error, one per line, and exits 1 if there is any.`)
	file := fs.file()
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	if err := fs.required("file"); err != nil {
		return err
	}
	f, err := fs.load(*file)
	if err != nil {
		return err
	}
	// Always plural: scripts match this line.
	fmt.Fprintf(e.stdout, "%s: ok (%d peers, %d networks, %d rules, %d tests)\n", *file,
		len(f.Peers), len(f.Networks), len(f.Rules), len(f.Tests))
	writeMeshWarnings(e.stdout, *file, f)
	return nil
}

func cmdExplain(e *env, args []string) error {
	fs := newFlags(e, "explain", "--file F FROM TO [PORT] | --control SOCKET FROM TO [PORT]",
		`Says whether the policy lets peer FROM open a TCP connection to PORT
(default 4369, epmd) of peer TO: "allow" or "deny" first on the line, then
what decided it, the rule (file:line) or the default.

With --control, asks the running overlayd instead: its current peer file,
and the Erlang nodes it resolves now (this host's epmd, or the ports other
hosts' epmd announced here), each with its own verdict; a PORT that is a
node's distribution port is judged as that node's.`)
	file := fs.String("file", "", "the peer file (required unless --control)")
	socket := fs.String("control", "", "ask the overlayd at this control socket instead of reading a file")
	erlang := fs.Bool("erlang", false, "PORT is a distribution port registered in TO's epmd (rules with erlang cover it)")
	node := fs.String("node", "", "the Erlang node asked for (name before @): PORT is an Erlang port of that node")
	pos, err := fs.parse(args, 2, 3)
	if err != nil {
		return err
	}
	port := uint16(peers.EPMDPort)
	if len(pos) == 3 {
		n, err := strconv.ParseUint(pos[2], 10, 16)
		if err != nil || n == 0 {
			return fs.usageError("PORT %q is not a port (1-65535)", pos[2])
		}
		port = uint16(n)
	}
	if *socket != "" {
		if *file != "" || *erlang || *node != "" {
			return fs.usageError("--control asks the daemon; it takes no --file, --erlang or --node")
		}
		return cmdExplainLive(fs, *socket, pos[0], pos[1], port)
	}
	if err := fs.required("file"); err != nil {
		return err
	}
	f, err := fs.load(*file)
	if err != nil {
		return err
	}
	var ends [2]*peers.Peer
	for i, name := range pos[:2] {
		if ends[i], err = fs.peer(f, *file, name); err != nil {
			return err
		}
	}
	if *node != "" {
		if err := peers.CheckNodePattern(*node); err != nil || strings.ContainsAny(*node, "*?") {
			return fs.usageError("--node %q is not a node name", *node)
		}
	}
	// The policy's part only: the file does not say what the target offers.
	q := peers.Conn{From: ends[0], To: ends[1], Port: port, Erlang: *erlang || *node != "", Node: *node}
	fmt.Fprintln(e.stdout, f.Judge(q).Policy)
	return nil
}

// networkHint helps when a network is named where a peer is wanted.
func networkHint(f *peers.File, name string) string {
	if f.Network(name) != nil {
		return " (" + name + " is a network; explain takes peers)"
	}
	return ""
}

func cmdShow(e *env, args []string) error {
	fs := newFlags(e, "show", "--file F NAME",
		`Shows a peer (network, address, face, endpoint, keepalive) and the exact
environment and erl flags that make Erlang on its host listen on its face
only, as userspace mode needs.`)
	file := fs.file()
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := fs.required("file"); err != nil {
		return err
	}
	_, p, err := fs.loadPeer(*file, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprint(e.stdout, showText(p))
	fmt.Fprint(e.stdout, namesText(*file, p))
	return nil
}

// showText is the output of show. Test harnesses read its export and erl
// lines: keep their shape.
func showText(p *peers.Peer) string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-9s %s\n", k, v) }
	line("peer", p.Name)
	line("network", p.Network.Name)
	line("address", p.Address.String())
	if p.Mode != peers.ModeUserspace {
		line("mode", p.Mode.String())
		line("face", "none ("+p.Mode.String()+" mode: Erlang uses the overlay address)")
	} else {
		line("face", p.Face.String())
	}
	if p.Endpoint != "" {
		line("endpoint", p.Endpoint)
	} else {
		line("endpoint", "none (behind NAT: it dials out)")
	}
	if p.TCPEndpoint != "" {
		line("tcp", p.TCPEndpoint+" (transport "+p.Transport.String()+")")
	}
	if p.Keepalive != 0 {
		line("keepalive", p.Keepalive.String())
	}
	if len(p.Expose) > 0 {
		rs := make([]string, len(p.Expose))
		for i, r := range p.Expose {
			rs[i] = r.String()
		}
		line("expose", strings.Join(rs, ", "))
	}
	if p.Mode != peers.ModeUserspace {
		b.WriteString(showTUNText(p))
		return b.String()
	}
	face := p.Face.String()
	fmt.Fprintf(&b, `
# Erlang on this host (userspace mode): epmd and nodes listen on the face only.
export ERL_EPMD_ADDRESS=%s
erl -name app@%s -kernel inet_dist_use_interface '%s'
# If systemd's epmd.socket is enabled, it holds the wildcard on 4369 and no
# face can bind it: add a drop-in (configs/epmd.socket.d/nodewire.conf) with
# ListenStream= then ListenStream=127.0.0.1:4369 and ListenStream=%s:4369,
# or disable it (systemctl disable --now epmd.socket).
`, face, face, erlTuple(p.Face), face)
	return b.String()
}

// erlTuple renders an address as an Erlang inet tuple: {127,77,1,1}.
func erlTuple(a netip.Addr) string {
	parts := make([]string, 0, 8)
	if a.Is4() {
		for _, x := range a.As4() {
			parts = append(parts, strconv.Itoa(int(x)))
		}
	} else {
		b := a.As16()
		for i := 0; i < 16; i += 2 {
			parts = append(parts, strconv.Itoa(int(b[i])<<8|int(b[i+1])))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}
