package peers

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultPort is the UDP port of a peer whose endpoint names none, unless
// overlay.port says otherwise. It is WireGuard's customary port.
const DefaultPort = 51820

// Parse parses and validates a peer file, runs its tests, and reports every
// error found (as Errors) rather than the first, so one edit-reload cycle
// fixes them all. name is used in messages; the result keeps no reference
// to data.
//
// overlay.faces defaults to overlay.prefix with its first octet replaced
// by 127 (10.77.0.0/16 gives 127.77.0.0/16); that needs a prefix of /8 or
// longer, which faces require anyway.
//
// Names in the file are matched exactly; names that differ only in case are
// refused, because peer names become host names, which ignore case.
func Parse(name string, data []byte) (*File, error) {
	p := &parser{name: name}
	f := p.parseFile(data)
	if len(p.errs) > 0 {
		p.errs.sort()
		return nil, p.errs
	}
	return f, nil
}

// Load reads and parses the file at path. Messages name the path as given,
// so that a relative path the operator typed is what they see.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Peer returns the peer called name, or nil. Case is ignored: names are
// host names.
func (f *File) Peer(name string) *Peer { return f.peerByName[strings.ToLower(name)] }

// PeerByAddr returns the peer whose overlay address is a, or nil.
func (f *File) PeerByAddr(a netip.Addr) *Peer { return f.peerByAddr[a] }

// PeerByFace returns the peer whose face is a, or nil.
func (f *File) PeerByFace(a netip.Addr) *Peer { return f.peerByFace[a] }

// Network returns the network called name, or nil. Case is ignored.
func (f *File) Network(name string) *Network { return f.netByName[strings.ToLower(name)] }

// fileParser holds the state of one Parse beyond the error list.
type fileParser struct {
	*parser
	f         *File
	overlayOK bool // Overlay.Prefix and Faces are valid; faces can be computed
	// policyBroken is set by any problem that makes Decide's answers
	// meaningless (a dropped rule, a peer without a network); tests are not
	// run then, as their failures would only be noise.
	policyBroken bool
	nets         map[string]*Network // exact names
	peers        map[string]*Peer
}

func (p *parser) parseFile(data []byte) *File {
	root := p.decode(data)
	if root == nil {
		return nil
	}
	fp := &fileParser{
		parser: p,
		f:      &File{Name: p.name},
		nets:   map[string]*Network{},
		peers:  map[string]*Peer{},
	}
	keys, vals, ok := p.fields(root, "", "overlay", "networks", "interconnect", "tests", "peers", "serial", "expires")
	if !ok {
		return nil
	}
	if keys[0] == nil {
		p.errorf(root.Line, "overlay", "missing")
	} else {
		fp.parseOverlay(keys[0], vals[0])
	}
	if keys[5] != nil {
		fp.parseSerial(vals[5])
	}
	if keys[6] != nil {
		fp.parseExpires(vals[6])
	}
	fp.parseNetworks(vals[1])
	fp.parsePeers(vals[4])
	fp.checkNames()
	fp.parseRules(vals[2])
	fp.parseTests(vals[3])
	fp.index()
	if !fp.policyBroken {
		fp.f.policy = buildPolicy(fp.f)
		fp.runTests()
	}
	return fp.f
}

func (p *fileParser) parseOverlay(key, n *yaml.Node) {
	ov := &p.f.Overlay
	keys, vals, ok := p.fields(n, "overlay", "prefix", "faces", "port")
	if !ok {
		return
	}
	prefixOK := false
	if keys[0] == nil {
		p.errorf(key.Line, "overlay.prefix", "missing")
	} else if ov.Prefix, prefixOK = p.prefix(vals[0], "overlay.prefix"); prefixOK {
		line := vals[0].Line
		switch {
		case overlaps(ov.Prefix, loopback):
			p.errorf(line, "overlay.prefix", "%s overlaps 127.0.0.0/8; overlay addresses must not be loopback addresses", ov.Prefix)
			prefixOK = false
		case ov.Prefix.Bits() < 8:
			p.errorf(line, "overlay.prefix", "%s is too short: faces need a prefix of the same length inside 127.0.0.0/8, so use /8 or longer", ov.Prefix)
			prefixOK = false
		}
	}
	facesOK := false
	if keys[1] == nil {
		if prefixOK {
			a := ov.Prefix.Addr().As4()
			a[0] = 127
			ov.Faces = netip.PrefixFrom(netip.AddrFrom4(a), ov.Prefix.Bits())
			facesOK = true
		}
	} else if ov.Faces, facesOK = p.prefix(vals[1], "overlay.faces"); facesOK {
		line := vals[1].Line
		switch {
		case !loopback.Contains(ov.Faces.Addr()) || ov.Faces.Bits() < 8:
			p.errorf(line, "overlay.faces", "%s is not inside 127.0.0.0/8", ov.Faces)
			facesOK = false
		case prefixOK && ov.Faces.Bits() != ov.Prefix.Bits():
			p.errorf(line, "overlay.faces", "%s must have the same length as overlay.prefix (/%d)", ov.Faces, ov.Prefix.Bits())
			facesOK = false
		}
	}
	ov.Port = DefaultPort
	if keys[2] != nil {
		if s, ok := p.str(vals[2], "overlay.port"); ok {
			port, err := parsePort(s)
			if err != nil {
				p.errorf(vals[2].Line, "overlay.port", "%v", err)
			} else {
				ov.Port = port
			}
		}
	}
	p.overlayOK = prefixOK && facesOK
}

// strAt is p.str(n, path+"."+field), the path built only for a message:
// a 10,000-peer file has some 50,000 fields.
func (p *parser) strAt(n *yaml.Node, path, field string) (string, bool) {
	if d := deref(n); !isNull(d) && d.Kind == yaml.ScalarNode {
		return d.Value, true
	}
	return p.str(n, path+"."+field)
}

// prefix parses a canonical IPv4 prefix.
func (p *parser) prefix(n *yaml.Node, path string) (netip.Prefix, bool) {
	s, ok := p.str(n, path)
	if !ok {
		return netip.Prefix{}, false
	}
	line := n.Line
	pf, err := netip.ParsePrefix(strings.TrimSpace(s))
	switch {
	case err != nil:
		p.errorf(line, path, "%q is not a prefix like 10.77.0.0/16", s)
	case !pf.Addr().Is4():
		p.errorf(line, path, "%s is IPv6; only IPv4 is supported", s)
	case pf.Masked() != pf:
		p.errorf(line, path, "%s is not canonical; use %s", pf, pf.Masked())
	default:
		return pf, true
	}
	return netip.Prefix{}, false
}

func (p *fileParser) parseNetworks(n *yaml.Node) {
	var placed []*Network // networks with a valid prefix, for the overlap check
	for _, e := range p.entries(n, "networks") {
		path := join("networks", e.name)
		p.checkName(e.name, e.key.Line, path)
		nw := &Network{Name: e.name, Line: e.key.Line, ID: len(p.f.Networks)}
		p.f.Networks = append(p.f.Networks, nw)
		p.nets[e.name] = nw
		keys, vals, ok := p.fields(e.val, path, "prefix")
		if !ok {
			continue
		}
		if keys[0] == nil {
			p.errorf(e.key.Line, path+".prefix", "missing")
			continue
		}
		pf, ok := p.prefix(vals[0], path+".prefix")
		if !ok {
			continue
		}
		if ov := p.f.Overlay.Prefix; ov.IsValid() && (pf.Bits() < ov.Bits() || !ov.Contains(pf.Addr())) {
			p.errorf(vals[0].Line, path+".prefix", "%s is outside overlay.prefix %s", pf, ov)
			continue
		}
		nw.Prefix = pf
		placed = append(placed, nw)
	}
	// Sweep in address order: a network overlaps an earlier-starting one
	// exactly when it starts before the furthest end seen so far.
	sort.SliceStable(placed, func(i, j int) bool {
		a, b := placed[i].Prefix, placed[j].Prefix
		if a.Addr() != b.Addr() {
			return a.Addr().Less(b.Addr())
		}
		return a.Bits() < b.Bits()
	})
	var widest *Network
	for _, nw := range placed {
		if widest != nil && overlaps(widest.Prefix, nw.Prefix) {
			a, b := widest, nw
			if a.Line > b.Line {
				a, b = b, a
			}
			p.errorf(b.Line, join("networks", b.Name)+".prefix", "%s overlaps network %s (%s, line %d)", b.Prefix, a.Name, a.Prefix, a.Line)
		}
		if widest == nil || u32(lastAddr(nw.Prefix)) > u32(lastAddr(widest.Prefix)) {
			widest = nw
		}
	}
}

func (p *fileParser) parsePeers(n *yaml.Node) {
	es := p.entries(n, "peers")
	// Sized up front: growing them was a tenth of a 10,000-peer parse.
	byKey := make(map[Key]*Peer, len(es))
	byAddr := make(map[netip.Addr]*Peer, len(es))
	p.f.Peers = slices.Grow(p.f.Peers, len(es))
	if len(p.peers) == 0 {
		p.peers = make(map[string]*Peer, len(es))
	}
	for _, e := range es {
		path := join("peers", e.name)
		p.checkName(e.name, e.key.Line, path)
		peer := &Peer{Name: e.name, Line: e.key.Line, ID: len(p.f.Peers)}
		p.f.Peers = append(p.f.Peers, peer)
		p.peers[e.name] = peer
		keys, vals, ok := p.fields(e.val, path, "network", "public_key", "address", "endpoint", "keepalive", "expose", "mode", "tcp_endpoint", "transport")
		if !ok {
			p.policyBroken = true
			continue
		}
		for i, f := range []string{"network", "public_key", "address"} {
			if keys[i] == nil {
				p.errorf(e.key.Line, path+"."+f, "missing")
			}
		}
		// network
		if keys[0] != nil {
			if s, ok := p.strAt(vals[0], path, "network"); ok {
				if peer.Network = p.nets[s]; peer.Network == nil {
					p.errorf(vals[0].Line, path+".network", "unknown network %q%s", s, p.hint(s, true, false))
				}
			}
		}
		if peer.Network == nil {
			p.policyBroken = true
		}
		// public_key
		if keys[1] != nil {
			if s, ok := p.strAt(vals[1], path, "public_key"); ok {
				line := vals[1].Line
				if k, err := ParseKey(strings.TrimSpace(s)); err != nil {
					p.errorf(line, path+".public_key", "%v", err)
				} else if other := byKey[k]; other != nil {
					p.errorf(line, path+".public_key", "same key as peer %s (line %d)", other.Name, other.Line)
				} else {
					peer.PublicKey = k
					byKey[k] = peer
				}
			}
		}
		// address
		if keys[2] != nil {
			p.parseAddress(peer, vals[2], path, byAddr)
		}
		if keys[3] != nil {
			if s, ok := p.strAt(vals[3], path, "endpoint"); ok {
				if ep, err := parseEndpoint(s, p.f.Overlay.Port); err != nil {
					p.errorf(vals[3].Line, path+".endpoint", "%v", err)
				} else {
					peer.Endpoint = ep
				}
			}
		}
		if keys[4] != nil {
			if s, ok := p.strAt(vals[4], path, "keepalive"); ok {
				if d, err := parseKeepalive(s); err != nil {
					p.errorf(vals[4].Line, path+".keepalive", "%v", err)
				} else {
					peer.Keepalive = d
				}
			}
		}
		if keys[5] != nil {
			ports, _ := p.ports(vals[5], path+".expose", false)
			peer.Expose = ports.Ranges
		}
		if keys[6] != nil {
			if s, ok := p.strAt(vals[6], path, "mode"); ok {
				if m, err := ParseMode(strings.TrimSpace(s)); err != nil {
					p.errorf(vals[6].Line, path+".mode", "%v", err)
				} else {
					peer.Mode = m
				}
			}
		}
		if keys[7] != nil {
			if s, ok := p.strAt(vals[7], path, "tcp_endpoint"); ok {
				if ep, err := parseEndpoint(s, DefaultTCPPort); err != nil {
					p.errorf(vals[7].Line, path+".tcp_endpoint", "%v", err)
				} else {
					peer.TCPEndpoint = ep
				}
			}
		}
		if keys[8] != nil {
			if s, ok := p.strAt(vals[8], path, "transport"); ok {
				if t, err := ParseTransport(strings.TrimSpace(s)); err != nil {
					p.errorf(vals[8].Line, path+".transport", "%v", err)
				} else if t == TransportTCP && keys[7] == nil {
					p.errorf(vals[8].Line, path+".transport", "tcp needs a tcp_endpoint to dial")
				} else {
					peer.Transport = t
				}
			}
		}
	}
}

// parseAddress parses the address of the peer at peerPath (peers.NAME).
func (p *fileParser) parseAddress(peer *Peer, n *yaml.Node, peerPath string, byAddr map[netip.Addr]*Peer) {
	s, ok := p.strAt(n, peerPath, "address")
	if !ok {
		return
	}
	line := n.Line
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	switch {
	case err != nil:
		p.errorf(line, peerPath+".address", "%q is not an IPv4 address", s)
		return
	case !a.Is4():
		p.errorf(line, peerPath+".address", "%s is IPv6; only IPv4 is supported", s)
		return
	}
	if nw := peer.Network; nw != nil && nw.Prefix.IsValid() {
		if !nw.Prefix.Contains(a) {
			p.errorf(line, peerPath+".address", "%s is outside network %s (%s)", a, nw.Name, nw.Prefix)
			return
		}
		if a == nw.Prefix.Addr() {
			p.errorf(line, peerPath+".address", "%s is the network address of %s (%s)", a, nw.Name, nw.Prefix)
			return
		}
	}
	if other := byAddr[a]; other != nil {
		p.errorf(line, peerPath+".address", "%s is already the address of peer %s (line %d)", a, other.Name, other.Line)
		return
	}
	if p.overlayOK && peer.Network != nil && peer.Network.Prefix.IsValid() {
		face := FaceOf(p.f.Overlay.Prefix, p.f.Overlay.Faces, a)
		if !face.IsValid() {
			p.errorf(line, peerPath+".address", "%s is outside overlay.prefix %s", a, p.f.Overlay.Prefix)
			return
		}
		if why := reservedFace(face); why != "" {
			p.errorf(line, peerPath+".address", "%s would have face %s, %s; pick another address", a, face, why)
			return
		}
		peer.Face = face
	}
	peer.Address = a
	byAddr[a] = peer
}

// ports parses a `ports:` or `expose:` list. Absent means every port; so
// does the word `all`, which is how Ports.String prints that.
func (p *parser) ports(n *yaml.Node, path string, erlangOK bool) (Ports, bool) {
	if d := deref(n); d != nil && d.Kind == yaml.ScalarNode && d.Value == "all" && erlangOK {
		return Ports{All: true}, true
	}
	items, ok := p.list(n, path)
	if !ok {
		return Ports{}, false
	}
	if len(items) == 0 {
		if erlangOK {
			p.errorf(n.Line, path, "empty list allows nothing; leave ports out to allow every port")
			return Ports{}, false
		}
		return Ports{}, true
	}
	var ps Ports
	good := true
	for i, it := range items {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		s, ok := p.str(it, ipath)
		if !ok {
			good = false
			continue
		}
		line := it.Line
		if strings.TrimSpace(s) == "erlang" {
			if !erlangOK {
				p.errorf(line, ipath, "erlang is not needed here: Erlang's ports are always offered")
				good = false
				continue
			}
			ps.Erlang = true
			continue
		}
		r, err := ParsePortRange(s)
		switch {
		case err == nil:
		case strings.Trim(s, "0123456789- ") != "" && erlangOK:
			p.errorf(line, ipath, "unknown port %q (use a number, a range like 9100-9199, or erlang)", s)
		case strings.Trim(s, "0123456789- ") != "":
			p.errorf(line, ipath, "unknown port %q (use a number or a range like 9100-9199)", s)
		default:
			p.errorf(line, ipath, "%v", err)
		}
		if err != nil {
			good = false
			continue
		}
		ps.Ranges = append(ps.Ranges, r)
	}
	return ps, good
}

func (p *fileParser) parseRules(n *yaml.Node) {
	items, _ := p.list(n, "interconnect")
	for i, it := range items {
		path := fmt.Sprintf("interconnect[%d]", i)
		line := it.Line
		keys, vals, ok := p.fields(it, path, "from", "to", "between", "ports", "nodes")
		if !ok {
			p.policyBroken = true
			continue
		}
		r := &Rule{File: p.name, Line: line, Index: len(p.f.Rules)}
		good := true
		switch {
		case keys[2] != nil && (keys[0] != nil || keys[1] != nil):
			p.errorf(line, path, "use either from and to, or between, not both")
			good = false
		case keys[2] != nil:
			r.Both = true
			names, ok := p.list(vals[2], path+".between")
			if !ok {
				good = false
				break
			}
			if len(names) != 2 {
				p.errorf(vals[2].Line, path+".between", "expected two names, got %s", countNames(vals[2], len(names)))
				good = false
				break
			}
			r.From, r.src, ok = p.selector(names[0], path+".between[0]")
			good = good && ok
			r.To, r.dst, ok = p.selector(names[1], path+".between[1]")
			good = good && ok
		case keys[0] != nil || keys[1] != nil:
			for j, f := range []string{"from", "to"} {
				if keys[j] == nil {
					p.errorf(line, path+"."+f, "missing")
					good = false
				}
			}
			if keys[0] != nil {
				r.From, r.src, ok = p.selector(vals[0], path+".from")
				good = good && ok
			}
			if keys[1] != nil {
				r.To, r.dst, ok = p.selector(vals[1], path+".to")
				good = good && ok
			}
		default:
			p.errorf(line, path, "needs from and to, or between")
			good = false
		}
		r.Ports = Ports{All: true}
		if keys[3] != nil {
			r.Ports, ok = p.ports(vals[3], path+".ports", true)
			good = good && ok
		}
		if keys[4] != nil && good {
			r.Nodes, ok = p.parseNodes(vals[4], path+".nodes", r.Ports)
			good = good && ok
		}
		if !good {
			p.policyBroken = true
			continue
		}
		p.f.Rules = append(p.f.Rules, r)
	}
}

func countNames(n *yaml.Node, count int) string {
	if n = deref(n); n == nil || n.Kind != yaml.SequenceNode {
		return describe(n)
	}
	return fmt.Sprint(count)
}

// selector resolves a rule's network or peer name. Networks are numbered
// 0..len(Networks)-1 and peers after them, so that one map key holds either.
func (p *fileParser) selector(n *yaml.Node, path string) (string, int32, bool) {
	s, ok := p.str(n, path)
	if !ok {
		return "", 0, false
	}
	if nw := p.nets[s]; nw != nil {
		return s, int32(nw.ID), true
	}
	if peer := p.peers[s]; peer != nil {
		return s, int32(len(p.f.Networks) + peer.ID), true
	}
	p.errorf(n.Line, path, "unknown network or peer %q%s", s, p.hint(s, true, true))
	return s, 0, false
}

// hint suggests the right spelling when a name differs only in case.
func (p *fileParser) hint(s string, nets, peers bool) string {
	if nets {
		for _, nw := range p.f.Networks {
			if strings.EqualFold(nw.Name, s) {
				return fmt.Sprintf(" (did you mean %s?)", nw.Name)
			}
		}
	}
	if peers {
		for _, peer := range p.f.Peers {
			if strings.EqualFold(peer.Name, s) {
				return fmt.Sprintf(" (did you mean %s?)", peer.Name)
			}
		}
	}
	return ""
}

func (p *fileParser) parseTests(n *yaml.Node) {
	items, _ := p.list(n, "tests")
	for i, it := range items {
		path := fmt.Sprintf("tests[%d]", i)
		line := it.Line
		keys, vals, ok := p.fields(it, path, "from", "to", "port", "expect", "node")
		if !ok {
			continue
		}
		t := &Test{Line: line}
		good := true
		for j, f := range []string{"from", "to", "port", "expect"} {
			fpath := path + "." + f
			if keys[j] == nil {
				p.errorf(line, fpath, "missing")
				good = false
				continue
			}
			switch j {
			case 0:
				t.From, t.from = p.testPeer(vals[j], fpath)
				good = good && t.from != nil
			case 1:
				t.To, t.to = p.testPeer(vals[j], fpath)
				good = good && t.to != nil
			case 2:
				if s, ok := p.str(vals[j], fpath); !ok {
					good = false
				} else if port, err := parsePort(s); err != nil {
					p.errorf(vals[j].Line, fpath, "%v", err)
					good = false
				} else {
					t.Port = port
				}
			case 3:
				if s, ok := p.str(vals[j], fpath); !ok {
					good = false
				} else if s == "allow" || s == "deny" {
					t.Allow = s == "allow"
				} else {
					p.errorf(vals[j].Line, fpath, "%q must be allow or deny", s)
					good = false
				}
			}
		}
		if keys[4] != nil {
			if s, ok := p.str(vals[4], path+".node"); !ok {
				good = false
			} else if err := CheckNodePattern(s); err != nil || strings.ContainsAny(s, "*?") {
				if err == nil {
					err = fmt.Errorf("%q is a pattern; a test names one node", s)
				}
				p.errorf(vals[4].Line, path+".node", "%v", err)
				good = false
			} else {
				t.Node = s
			}
		}
		t.ok = good
		p.f.Tests = append(p.f.Tests, t)
	}
}

func (p *fileParser) testPeer(n *yaml.Node, path string) (string, *Peer) {
	s, ok := p.str(n, path)
	if !ok {
		return "", nil
	}
	if peer := p.peers[s]; peer != nil {
		return s, peer
	}
	if p.nets[s] != nil {
		p.errorf(n.Line, path, "%q is a network; tests name peers", s)
	} else {
		p.errorf(n.Line, path, "unknown peer %q%s", s, p.hint(s, false, true))
	}
	return s, nil
}

// runTests evaluates every well-formed test against the policy.
func (p *fileParser) runTests() {
	for i, t := range p.f.Tests {
		if !t.ok || t.from.Network == nil || t.to.Network == nil {
			continue
		}
		// The policy alone: a test does not know what the target offers.
		d := p.f.Judge(Conn{From: t.from, To: t.to, Port: t.Port, Erlang: t.Node != "", Node: t.Node}).Policy
		node := ""
		if t.Node != "" {
			node = " node " + t.Node
		}
		if d.Allow == t.Allow {
			continue
		}
		p.errorf(t.Line, fmt.Sprintf("tests[%d]", i), "%s -> %s port %d%s: expected %s, got %s (%s)",
			t.From, t.To, t.Port, node, verdict(t.Allow), verdict(d.Allow), d.why())
	}
}

func verdict(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

// index builds the lookup maps of a parsed file.
func (p *fileParser) index() {
	f := p.f
	f.peerByName = make(map[string]*Peer, len(f.Peers))
	f.peerByAddr = make(map[netip.Addr]*Peer, len(f.Peers))
	f.peerByFace = make(map[netip.Addr]*Peer, len(f.Peers))
	f.netByName = make(map[string]*Network, len(f.Networks))
	for _, nw := range f.Networks {
		f.netByName[strings.ToLower(nw.Name)] = nw
	}
	for _, peer := range f.Peers {
		f.peerByName[strings.ToLower(peer.Name)] = peer
		if peer.Address.IsValid() {
			f.peerByAddr[peer.Address] = peer
		}
		if peer.Face.IsValid() {
			f.peerByFace[peer.Face] = peer
		}
	}
}
