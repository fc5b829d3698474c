package main

// The commands that write the peer file: init, add-network, add-peer,
// remove-peer and allow. Each edit is made on the text (peers.AddPeer and
// friends keep every comment and blank line), the whole result is validated
// with peers.Parse, and only a valid result is written, atomically. On any
// error the file is left byte for byte as it was.

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/sshsig"
)

// filePerm is the mode of a new peer file: it holds public keys only, and
// every host reads it.
const filePerm = 0o644

// errInvalid is a result that did not validate; the caller has printed its
// errors already and adds its own explanation.
type errInvalid struct {
	errs    error // the validation errors of the edited text
	already bool  // the file was invalid before the edit too
}

func (e *errInvalid) Error() string { return e.errs.Error() }

// editPeerFile reads path, applies edit to its text, validates the result
// and writes it atomically. edit gets the parsed file, nil when the file is
// invalid as it is (with the reason in origErr), for allocation and hints.
func editPeerFile(path string, edit func(data []byte, orig *peers.File, origErr error) ([]byte, error)) (*peers.File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	orig, origErr := peers.Parse(path, data)
	out, err := edit(data, orig, origErr)
	if err != nil {
		return nil, err
	}
	if _, err := peers.Parse(path, out); err != nil {
		if origErr != nil {
			// Report the errors as they are on disk, with lines the
			// operator can find.
			return nil, &errInvalid{errs: origErr, already: true}
		}
		return nil, &errInvalid{errs: err}
	}
	// Every edit is a new version: hosts that follow signed files apply
	// only a serial higher than the one they run. Bumped after validation,
	// so that errors above name the lines the operator's edit made.
	if out, _, err = peers.BumpSerial(out); err != nil {
		return nil, err
	}
	f, err := peers.Parse(path, out)
	if err != nil {
		return nil, fmt.Errorf("after bumping the serial: %w", err)
	}
	// Another edit since we read the file would be lost by the rename.
	// This narrows that window; it does not close it.
	if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, data) {
		return nil, errors.New("it changed while being edited; run the command again")
	}
	if err := peers.WriteFileAtomic(path, out, filePerm); err != nil {
		return nil, err
	}
	return f, nil
}

// needValid is the error of an edit that needs the file parsed as it is,
// to allocate an address or a prefix.
func needValid(origErr error) error {
	return &errInvalid{errs: origErr, already: true}
}

// editFailed is the error of editPeerFile as reported: the validation
// errors one per line, then one line saying the file was not changed and
// why.
func (c *cmdFlags) editFailed(path string, err error, hint string) error {
	var inv *errInvalid
	if !errors.As(err, &inv) {
		return fmt.Errorf("%s not changed: %w", path, err)
	}
	msg := fmt.Sprintf("%s not changed: the result would be invalid (line numbers are those of the edited file)", path)
	if inv.already {
		msg = fmt.Sprintf("%s not changed: it is invalid as it is; fix it first (overlayctl check --file %s)", path, path)
	}
	if hint != "" && !inv.already {
		msg += "; " + hint
	}
	return fmt.Errorf("%w\n%s", inv.errs, msg)
}

// reloadFlags adds --reload and --control to an editing command.
func (c *cmdFlags) reloadFlags() (reload *bool, socket *string) {
	reload = c.Bool("reload", false, "ask the local overlayd to reload the file after writing it")
	socket = c.String("control", "", "control socket of overlayd for --reload (default: overlayd's)")
	return reload, socket
}

// reload tells the daemon after a successful write, if asked to.
func (c *cmdFlags) reload(reload bool, socket, path string) error {
	if _, err := os.Stat(path + sshsig.SigExt); err == nil {
		fmt.Fprintf(c.e.stderr, "overlayctl %s: note: %s%s signs the file as it was before this edit; hosts running overlayd --trust refuse the file until it is signed again (overlayctl sign --key ADMIN_KEY %s)\n",
			c.Name(), path, sshsig.SigExt, path)
	}
	if !reload {
		return nil
	}
	if err := reloadDaemon(socket); err != nil {
		return fmt.Errorf("%s was written, but the reload failed: %w (run overlayctl reload once overlayd can take it)", path, err)
	}
	return nil
}

func cmdInit(e *env, args []string) error {
	fs := newFlags(e, "init", "--file F --prefix CIDR [--faces CIDR] [--port N]",
		`Writes a new peer file with no networks and no peers, commented to explain
each section. It refuses to overwrite an existing file.

--faces defaults to the prefix with 127 as its first octet (10.77.0.0/16
gives faces 127.77.0.0/16); a prefix shorter than /8 needs --faces.`)
	file := fs.file()
	prefixFlag := fs.String("prefix", "", "IPv4 prefix of every overlay address, e.g. 10.77.0.0/16 (required)")
	facesFlag := fs.String("faces", "", "loopback prefix of the faces, same length as --prefix (default: 127 + the prefix's other octets)")
	port := fs.Uint("port", peers.DefaultPort, "UDP port of a peer whose endpoint names none")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	if err := fs.required("file", "prefix"); err != nil {
		return err
	}
	prefix, err := netip.ParsePrefix(*prefixFlag)
	switch {
	case err != nil || !prefix.Addr().Is4():
		return fs.usageError("--prefix %q is not an IPv4 prefix like 10.77.0.0/16", *prefixFlag)
	case prefix.Masked() != prefix:
		return fs.usageError("--prefix %s is not canonical; use %s", prefix, prefix.Masked())
	}
	var faces netip.Prefix
	if *facesFlag == "" {
		if prefix.Bits() < 8 {
			return fs.usageError("--prefix %s is shorter than /8: pass --faces (a prefix of the same length inside 127.0.0.0/8)", prefix)
		}
		faces = defaultFaces(prefix)
	} else if faces, err = netip.ParsePrefix(*facesFlag); err != nil || !faces.Addr().Is4() {
		return fs.usageError("--faces %q is not an IPv4 prefix like 127.77.0.0/16", *facesFlag)
	}
	if *port < 1 || *port > 65535 {
		return fs.usageError("--port %d is not a port (1-65535)", *port)
	}
	text := initText(prefix, faces, uint16(*port))
	if _, err := peers.Parse(*file, []byte(text)); err != nil {
		return fmt.Errorf("%w\n%s not written", err, *file)
	}
	if err := writeNew(*file, []byte(text)); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (overlay %s, faces %s, port %d)\n", *file, prefix, faces, *port)
	return nil
}

// defaultFaces keeps the prefix's bits and puts 127 in the first octet,
// which is what the peer file assumes when faces is left out.
func defaultFaces(p netip.Prefix) netip.Prefix {
	a := p.Addr().As4()
	a[0] = 127
	return netip.PrefixFrom(netip.AddrFrom4(a), p.Bits())
}

// writeNew creates path with data, failing if it exists: init must never
// clobber a peer file.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists; not overwriting it", path)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// initText is the commented peer file init writes. The examples use the
// overlay's own addresses so that they can be uncommented as they are.
func initText(prefix, faces netip.Prefix, port uint16) string {
	// What add-network and add-peer would allocate first.
	net1, net2 := prefix, prefix
	if prefix.Bits() <= 23 {
		base := prefix.Addr().As4()
		net1 = netip.PrefixFrom(netip.AddrFrom4(base), 24)
		base[2]++
		net2 = netip.PrefixFrom(netip.AddrFrom4(base), 24)
	}
	addr := net1.Addr().Next()
	face := peers.FaceOf(prefix, faces, addr)
	r := strings.NewReplacer(
		"PREFIX", prefix.String(), "FACES", faces.String(), "PORT", fmt.Sprint(port),
		"NET1", net1.String(), "NET2", net2.String(), "ADDR", addr.String(), "FACE", face.String(),
	)
	return r.Replace(`# nodewire peer file: the same file on every host of the overlay.
# Check it with:  overlayctl check --file peers.yaml
# Edit it with overlayctl (add-network, add-peer, remove-peer, allow), which
# keeps these comments, or by hand.

# The overlay: every overlay address lies inside prefix. In userspace mode
# each peer also has a face, a loopback address at the same offset inside
# faces (ADDR -> FACE), where its Erlang nodes are reached.
overlay:
  prefix: PREFIX
  faces: FACES
  port: PORT              # UDP port of a peer whose endpoint names none

# Networks: peers in one network reach each other on every port. Each has a
# prefix inside the overlay; add-network picks the lowest free /24.
#   overlayctl add-network --file peers.yaml --name payments
networks:
  # payments:   {prefix: NET1}
  # monitoring: {prefix: NET2}

# Across networks nothing is allowed unless a rule says so. from/to (a
# network or a peer) says who may open connections; between allows both
# directions. ports is optional (default: every port); erlang means 4369 and
# the distribution ports the target's epmd has registered.
#   overlayctl allow --file peers.yaml --from monitoring --to payments --ports erlang
interconnect:
  # - from: monitoring
  #   to: payments
  #   ports: [erlang, 9100-9199]
  # - between: [payments, billing]

# Checked on every load: a failing test rejects the whole file, so a policy
# change cannot silently cut off (or open up) what a test pins down.
tests:
  # - {from: mon-1, to: pay-1, port: 4369, expect: allow}

# Peers: one per host. public_key is what overlayctl pubkey (or wg pubkey)
# prints on that host; add-peer picks the lowest free address of the
# network. endpoint is where the others reach it (leave it out behind NAT:
# it dials out); keepalive keeps a NAT mapping open.
#   overlayctl add-peer --file peers.yaml --name pay-1 --network payments --public-key KEY
peers:
  # pay-1:
  #   network: payments
  #   public_key: 9sAIBGj+6fnZmaURm6fv1yqFbx0VD9vbbzT4bFoYdGE=
  #   address: ADDR
  #   endpoint: pay-1.example.net:PORT
  #   keepalive: 25s
`)
}

func cmdAddNetwork(e *env, args []string) error {
	fs := newFlags(e, "add-network", "--file F --name NET [--prefix CIDR]",
		`Adds a network to the peer file. Without --prefix it gets the lowest free
prefix of --bits inside the overlay.`)
	file := fs.file()
	name := fs.String("name", "", "name of the network (letters, digits, '-') (required)")
	prefixFlag := fs.String("prefix", "", "the network's prefix, inside the overlay (default: the lowest free one)")
	bits := fs.Int("bits", 24, "length of the allocated prefix when --prefix is not given")
	reload, socket := fs.reloadFlags()
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	if err := fs.required("file", "name"); err != nil {
		return err
	}
	if err := peers.CheckName(*name); err != nil {
		return fs.usageError("--name: %v", err)
	}
	var prefix netip.Prefix
	if *prefixFlag != "" {
		var err error
		if prefix, err = netip.ParsePrefix(*prefixFlag); err != nil {
			return fs.usageError("--prefix %q is not a prefix like 10.77.3.0/24", *prefixFlag)
		}
	}
	f, err := editPeerFile(*file, func(data []byte, orig *peers.File, origErr error) ([]byte, error) {
		if !prefix.IsValid() {
			if orig == nil {
				return nil, needValid(origErr)
			}
			p, err := orig.NextNetworkPrefix(*bits)
			if err != nil {
				return nil, err
			}
			prefix = p
		}
		return peers.AddNetwork(data, *name, prefix)
	})
	if err != nil {
		return fs.editFailed(*file, err, "")
	}
	nw := f.Network(*name)
	fmt.Fprintf(e.stdout, "%s prefix %s\n", nw.Name, nw.Prefix)
	return fs.reload(*reload, *socket, *file)
}

func cmdAddPeer(e *env, args []string) error {
	fs := newFlags(e, "add-peer", "--file F --name N --network NET --public-key K [--address A] [--endpoint E] [--keepalive D] [--expose LIST] [--mode M] [--tcp-endpoint E] [--transport T] [--reload] [--control S]",
		`Adds a peer to the peer file, at the lowest free address of its network
unless --address says otherwise, and prints its address and face.`)
	file := fs.file()
	name := fs.String("name", "", "name of the peer, usually its host name (required)")
	network := fs.String("network", "", "network of the peer (required)")
	key := fs.String("public-key", "", "the peer's public key, as overlayctl pubkey or wg pubkey prints it (required)")
	addrFlag := fs.String("address", "", "overlay address, inside the network (default: the lowest free one)")
	endpoint := fs.String("endpoint", "", "host:port where the others reach the peer (default: none, it dials out)")
	keepalive := fs.Duration("keepalive", 0, "persistent keepalive, e.g. 25s, for a peer behind NAT")
	expose := fs.String("expose", "", "extra ports the host offers through the overlay, e.g. 8080,9100-9199")
	modeFlag := fs.String("mode", "userspace", "how the host joins: userspace, tun (overlayd --mode tun) or wireguard (standard tools, see wg-config)")
	tcpEndpoint := fs.String("tcp-endpoint", "", "host[:port] where the peer also takes WireGuard over TLS/TCP (overlayd --tcp-listen), for when UDP is blocked; default port 443")
	transportFlag := fs.String("transport", "auto", "auto (UDP, TCP fallback) or tcp (always the --tcp-endpoint)")
	reload, socket := fs.reloadFlags()
	publish := fs.String("publish", "", "instead of --file, edit the signed file at etcd://HOST:PORT[,HOST:PORT]/KEY: read, verify, add, bump serial, sign with --sign-key, compare-and-swap (redone if another admin wrote in between)")
	ef := fs.etcdFlags()
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	if *publish != "" && *file != "" {
		return fs.usageError("--file and --publish: give one")
	}
	if *publish != "" {
		*file = *publish // for required; the edit below reads etcd
	}
	if err := fs.required("file", "name", "network", "public-key"); err != nil {
		return err
	}
	if err := peers.CheckName(*name); err != nil {
		return fs.usageError("--name: %v", err)
	}
	k, err := peers.ParseKey(strings.TrimSpace(*key))
	if err != nil {
		return fs.usageError("--public-key: %v", err)
	}
	var addr netip.Addr
	if *addrFlag != "" {
		if addr, err = netip.ParseAddr(*addrFlag); err != nil {
			return fs.usageError("--address %q is not an IP address", *addrFlag)
		}
	}
	ports := splitList(*expose)
	for _, p := range ports {
		if _, err := peers.ParsePortRange(p); err != nil {
			return fs.usageError("--expose: %v", err)
		}
	}
	mode, err := peers.ParseMode(*modeFlag)
	if err != nil {
		return fs.usageError("--mode: %v", err)
	}
	transport, err := peers.ParseTransport(*transportFlag)
	if err != nil {
		return fs.usageError("--transport: %v", err)
	}
	entry := peers.PeerEntry{Name: *name, Network: *network, PublicKey: k.String(), Address: addr,
		Endpoint: *endpoint, Keepalive: *keepalive, Expose: ports, Mode: mode, TCPEndpoint: *tcpEndpoint, Transport: transport}
	edit := func(data []byte, orig *peers.File, origErr error) ([]byte, error) {
		if orig != nil && orig.Network(*network) == nil {
			return nil, fmt.Errorf("no network %s (add it with overlayctl add-network)", *network)
		}
		en := entry // a --publish retry allocates again, from the file it reads
		if !en.Address.IsValid() {
			if orig == nil {
				return nil, needValid(origErr)
			}
			a, err := orig.NextAddress(*network)
			if err != nil {
				return nil, err
			}
			en.Address = a
		}
		return peers.AddPeer(data, en)
	}
	if *publish != "" {
		f, rev, conflicts, err := publishEdit(*publish, ef, edit)
		if err != nil {
			return fs.editFailed(*publish, err, "")
		}
		p := f.Peer(*name)
		fmt.Fprintf(e.stdout, "%s address %s face %s; published serial %d at revision %d (%d concurrent writes redone)\n", p.Name, p.Address, p.Face, f.Serial, rev, conflicts)
		return nil
	}
	f, err := editPeerFile(*file, edit)
	if err != nil {
		return fs.editFailed(*file, err, "")
	}
	p := f.Peer(*name)
	fmt.Fprintf(e.stdout, "%s address %s face %s\n", p.Name, p.Address, p.Face)
	return fs.reload(*reload, *socket, *file)
}

func cmdRemovePeer(e *env, args []string) error {
	fs := newFlags(e, "remove-peer", "--file F --name N [--reload] [--control S]",
		`Removes a peer from the peer file, with the comment right above it. Rules
and tests that name the peer must be removed first (by hand): the file
would not be valid with them.`)
	file := fs.file()
	name := fs.String("name", "", "name of the peer (required)")
	reload, socket := fs.reloadFlags()
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	if err := fs.required("file", "name"); err != nil {
		return err
	}
	var gone *peers.Peer
	var hint string
	_, err := editPeerFile(*file, func(data []byte, orig *peers.File, _ error) ([]byte, error) {
		n := *name
		if orig != nil {
			if gone = orig.Peer(n); gone == nil {
				return nil, fmt.Errorf("peer %s not found", n)
			}
			n = gone.Name
			hint = mentions(orig, n)
		}
		return peers.RemovePeer(data, n)
	})
	if err != nil {
		return fs.editFailed(*file, err, hint)
	}
	if gone != nil {
		fmt.Fprintf(e.stdout, "removed %s (address %s)\n", gone.Name, gone.Address)
	} else {
		fmt.Fprintf(e.stdout, "removed %s\n", *name)
	}
	return fs.reload(*reload, *socket, *file)
}

// mentions says which rules and tests name peer, for the error of a
// removal that they make invalid.
func mentions(f *peers.File, peer string) string {
	var rules, tests []string
	for _, r := range f.Rules {
		if strings.EqualFold(r.From, peer) || strings.EqualFold(r.To, peer) {
			rules = append(rules, fmt.Sprint(r.Line))
		}
	}
	for _, t := range f.Tests {
		if strings.EqualFold(t.From, peer) || strings.EqualFold(t.To, peer) {
			tests = append(tests, fmt.Sprint(t.Line))
		}
	}
	var parts []string
	for _, m := range []struct {
		one, many string
		lines     []string
	}{{"the rule", "the rules", rules}, {"the test", "the tests", tests}} {
		switch len(m.lines) {
		case 0:
		case 1:
			parts = append(parts, m.one+" at line "+m.lines[0])
		default:
			parts = append(parts, m.many+" at lines "+strings.Join(m.lines, ", "))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("%s is still named by %s (in the file as it is): remove those first", peer, strings.Join(parts, " and "))
}

func cmdAllow(e *env, args []string) error {
	fs := newFlags(e, "allow", "--file F (--from A --to B | --between A,B) [--ports LIST] [--reload] [--control S]",
		`Adds an interconnect rule at the end of the interconnect section. A and B
are networks or peers. --from/--to lets A open connections to B; --between
allows both directions. --ports is a list like erlang,9100-9199 (erlang:
4369 and the distribution ports registered in the target's epmd); without
it, every port.`)
	file := fs.file()
	from := fs.String("from", "", "network or peer that may open connections")
	to := fs.String("to", "", "network or peer it may open them to")
	between := fs.String("between", "", "two networks or peers, A,B, that may open connections to each other")
	portsFlag := fs.String("ports", "", "ports allowed, e.g. erlang,9100-9199 (default: all)")
	reload, socket := fs.reloadFlags()
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	if err := fs.required("file"); err != nil {
		return err
	}
	var r peers.RuleEntry
	switch {
	case *between != "" && (*from != "" || *to != ""):
		return fs.usageError("use either --from and --to, or --between")
	case *between != "":
		ends := splitList(*between)
		if len(ends) != 2 {
			return fs.usageError("--between takes two names, A,B")
		}
		r = peers.RuleEntry{From: ends[0], To: ends[1], Both: true}
	case *from == "" || *to == "":
		return fs.usageError("give --from and --to, or --between")
	default:
		r = peers.RuleEntry{From: *from, To: *to}
	}
	if *portsFlag != "" && *portsFlag != "all" {
		r.Ports = splitList(*portsFlag)
		if len(r.Ports) == 0 {
			return fs.usageError("--ports is empty; leave it out to allow every port")
		}
		for _, p := range r.Ports {
			if p == "erlang" {
				continue
			}
			if _, err := peers.ParsePortRange(p); err != nil {
				return fs.usageError("--ports: %v (use numbers, ranges like 9100-9199, or erlang)", err)
			}
		}
	}
	f, err := editPeerFile(*file, func(data []byte, _ *peers.File, _ error) ([]byte, error) {
		return peers.AddRule(data, r)
	})
	if err != nil {
		return fs.editFailed(*file, err, "")
	}
	added := f.Rules[len(f.Rules)-1]
	fmt.Fprintf(e.stdout, "added rule %s (%s)\n", added.Pos(), added)
	return fs.reload(*reload, *socket, *file)
}
