package netstack

// Face listeners: for every other peer P, host sockets on P's face (a
// loopback address that stands for P here) for its epmd, its exposed ports
// and the distribution ports its epmd announced. A local process connecting
// there is checked against the policy and carried to P through the stack.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nodewire/nodewire/netstack/denylog"
	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/peers"
)

// maxLearnedPorts caps the distribution-port listeners learned for one
// peer: a peer's epmd cannot make this host open unbounded sockets.
const maxLearnedPorts = 256

// faceKey names one listener: a peer and a port on its face.
type faceKey struct {
	peer string
	port uint16
}

// face is one listening socket on a peer's face.
type face struct {
	key      faceKey
	addr     netip.AddrPort
	peerAddr netip.Addr // the peer's overlay address when opened
	dark     bool       // the policy lets self and the peer exchange nothing
	fd       int        // the listening socket, served by pollSet

	epmd   bool                   // the peer's epmd port
	expose atomic.Bool            // listed in the peer's expose
	erlang atomic.Bool            // announced in one of the peer's PORT2_RESPs
	node   atomic.Pointer[string] // the node name of the last PORT2_RESP that announced it
}

// FaceError is a face listener that could not be bound. Its message is one
// line that says what holds the address and how to fix it.
type FaceError struct {
	Peer string
	Addr netip.AddrPort
	Hint string // the fix, when the cause is known
	Err  error
}

func (e *FaceError) Error() string {
	if e.Hint != "" {
		return e.Hint
	}
	return fmt.Sprintf("listen on %v (face of %s): %v", e.Addr, e.Peer, e.Err)
}

func (e *FaceError) Unwrap() error { return e.Err }

// faceSet owns every face listener of a Stack.
type faceSet struct {
	s *Stack

	mu     sync.Mutex
	faces  map[faceKey]*face
	closed bool
	poll   *pollSet
	// synced is the snapshot the faces were last made to match (openAll,
	// sync), nil before; recheck is the peers whose faces must be looked
	// at again even if synced and the next snapshot agree on them: a face
	// failed to open, or ensureDist opened or failed one since. With them
	// a sync looks only at the peers that changed (syncLocked).
	synced  *peers.Snapshot
	recheck map[string]bool
}

func newFaceSet(s *Stack) *faceSet {
	fs := &faceSet{s: s, faces: make(map[faceKey]*face)}
	fs.poll = newPollSet(fs)
	return fs
}

// wantedFace is a listener a snapshot asks for.
type wantedFace struct {
	key    faceKey
	addr   netip.AddrPort
	peer   *peers.Peer
	epmd   bool
	expose bool
	dark   bool // the policy lets self and the peer exchange nothing (peers.File.Exchange)
}

// wantedFaces lists the listeners snap asks for, in a stable order: for
// every peer but self (or only those of only, if not nil), its epmd port
// and its exposed ports.
func wantedFaces(snap *peers.Snapshot, epmdPort uint16, only map[string]bool) []wantedFace {
	n := len(snap.File.Peers) // one a peer, mostly
	if only != nil {
		n = len(only)
	}
	out := make([]wantedFace, 0, n)
	for _, p := range snap.File.Peers {
		if p.Name == snap.Self.Name || only != nil && !only[p.Name] {
			continue
		}
		dark := !snap.File.Exchange(snap.Self, p)
		out = append(out, wantedFace{faceKey{p.Name, epmdPort}, netip.AddrPortFrom(p.Face, epmdPort), p, true, false, dark})
		seen := map[uint16]bool{epmdPort: true}
		for _, r := range p.Expose {
			for port := int(r.Lo); port <= int(r.Hi); port++ {
				if port == 0 || seen[uint16(port)] {
					continue
				}
				seen[uint16(port)] = true
				out = append(out, wantedFace{faceKey{p.Name, uint16(port)}, netip.AddrPortFrom(p.Face, uint16(port)), p, false, true, dark})
			}
		}
	}
	return out
}

// faceError explains why addr cannot be bound.
func faceError(addr netip.AddrPort, peer string, self *peers.Peer, erlangPort bool, err error) error {
	fe := &FaceError{Peer: peer, Addr: addr, Err: err}
	switch {
	case errors.Is(err, syscall.EADDRINUSE) && erlangPort:
		fe.Hint = fmt.Sprintf("%v is taken (epmd or a node holds the wildcard address?): start epmd with ERL_EPMD_ADDRESS=%v and nodes with -kernel inet_dist_use_interface '{%s}'",
			addr, self.Face, erlangTuple(self.Face))
	case errors.Is(err, syscall.EADDRINUSE):
		fe.Hint = fmt.Sprintf("%v is taken (a local service holds the wildcard address?): bind local services to this host's face %v, not to 0.0.0.0",
			addr, self.Face)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		fe.Hint = fmt.Sprintf("%v cannot be bound: this system does not route all of 127.0.0.0/8 to loopback (add the face address to lo)", addr)
	}
	return fe
}

// erlangTuple writes 127.77.1.1 as 127,77,1,1 for inet_dist_use_interface.
func erlangTuple(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("%d,%d,%d,%d", b[0], b[1], b[2], b[3])
}

// openAll binds every face of snap, or none: on a failure it closes what it
// opened and returns the failure.
func (fs *faceSet) openAll(snap *peers.Snapshot) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var opened []*face
	wanted := wantedFaces(snap, fs.s.epmdPort, nil)
	reserveFDs(len(wanted))
	for _, w := range wanted {
		f, err := fs.openLocked(w, snap.Self)
		if err != nil {
			for _, o := range opened {
				fs.closeLocked(o)
			}
			return err
		}
		opened = append(opened, f)
	}
	fs.synced = snap
	return nil
}

// sync makes the open faces match snap: opens what is new, closes what is
// gone, keeps the rest (and the distribution ports learned for peers whose
// face and address did not change). It returns the faces it could not
// open, joined; the others are open.
func (fs *faceSet) sync(snap *peers.Snapshot) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed {
		return nil
	}
	return fs.syncLocked(snap, fs.synced)
}

// syncLocked is sync from prev, the snapshot the faces match (nil: not
// known). It looks only at the peers whose faces prev and snap may want
// differently (changedFaces) and at those of fs.recheck: adding one peer
// to 10,000 opens its face and looks at no other (issue 13). With prev
// nil it looks at every peer.
func (fs *faceSet) syncLocked(snap, prev *peers.Snapshot) error {
	var only map[string]bool // nil: every peer
	if prev != nil && prev.Self.Name == snap.Self.Name {
		only = changedFaces(prev, snap)
		for name := range fs.recheck {
			only[name] = true
		}
	}
	wanted := wantedFaces(snap, fs.s.epmdPort, only)
	want := make(map[faceKey]*wantedFace, len(wanted))
	for i := range wanted {
		want[wanted[i].key] = &wanted[i]
	}
	for k, f := range fs.faces {
		if only != nil && !only[k.peer] {
			continue
		}
		p := snap.File.Peer(k.peer)
		w := want[k]
		switch {
		case p == nil || p.Name == snap.Self.Name || p.Face != f.addr.Addr():
			fs.closeLocked(f)
		case w != nil:
			f.dark = w.dark // lit or darkened: the same socket serves on
			f.expose.Store(w.expose)
		case f.erlang.Load() && p.Address == f.peerAddr:
			f.expose.Store(false) // still a learned dist port
		default:
			fs.closeLocked(f)
		}
	}
	var open []wantedFace // wanted and not open yet
	for _, w := range wanted {
		if _, ok := fs.faces[w.key]; !ok {
			open = append(open, w)
		}
	}
	reserveFDs(len(open))
	var errs []error
	failed := map[string]string{}
	for _, w := range open {
		_, err := fs.openLocked(w, snap.Self)
		if err != nil {
			errs = append(errs, err)
			if _, seen := failed[w.peer.Name]; !seen {
				failed[w.peer.Name] = err.Error()
			}
			continue
		}
	}
	for _, p := range snap.File.Peers {
		if p.Name != snap.Self.Name && (only == nil || only[p.Name]) {
			fs.s.stats.peer(p.Name).setFaceError(failed[p.Name])
		}
	}
	fs.synced, fs.recheck = snap, nil
	for name := range failed {
		fs.markLocked(name)
	}
	return errors.Join(errs...)
}

// markLocked has the next sync look at name's faces again.
func (fs *faceSet) markLocked(name string) {
	if fs.recheck == nil {
		fs.recheck = make(map[string]bool)
	}
	fs.recheck[name] = true
}

// changedFaces is the names of the peers whose faces prev and snap (of
// the same self) may want differently: added, removed, or with another
// face, address, exposed ports or reach (dark). A peer both name the same
// way gets the same faces from a sync from either, so a sync from prev
// to snap need not look at it.
func changedFaces(prev, snap *peers.Snapshot) map[string]bool {
	out := make(map[string]bool)
	var m peers.Matcher
	for _, p := range snap.File.Peers {
		o := m.Find(prev.File, p)
		if o == nil || o.Name != p.Name || o.Face != p.Face || o.Address != p.Address || !slices.Equal(o.Expose, p.Expose) ||
			(o.Name == prev.Self.Name) != (p.Name == snap.Self.Name) ||
			prev.File.Exchange(prev.Self, o) != snap.File.Exchange(snap.Self, p) {
			out[p.Name] = true
			if o != nil {
				out[o.Name] = true
			}
		}
	}
	m = peers.Matcher{}
	for _, o := range prev.File.Peers {
		if p := m.Find(snap.File, o); p == nil || p.Name != o.Name {
			out[o.Name] = true
		}
	}
	return out
}

// ensureDist makes sure a listener on p's face at port exists and counts as
// a distribution port of p. Called before a PORT2_RESP reaches the client.
func (fs *faceSet) ensureDist(p *peers.Peer, port uint16, node string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed {
		return errors.New("netstack: closed")
	}
	k := faceKey{p.Name, port}
	if f := fs.faces[k]; f != nil && f.addr.Addr() == p.Face {
		if !f.epmd {
			f.erlang.Store(true)
			f.node.Store(&node)
		}
		return nil
	}
	learned := 0
	for k2, f := range fs.faces {
		if k2.peer == p.Name && f.erlang.Load() && !f.expose.Load() {
			learned++
		}
	}
	if learned >= maxLearnedPorts {
		return fmt.Errorf("peer %s announced more than %d distribution ports", p.Name, maxLearnedPorts)
	}
	snap := fs.s.snap.Load()
	// The next sync looks at p's faces again, whatever p's snapshot was.
	fs.markLocked(p.Name)
	f, err := fs.openLocked(wantedFace{key: k, addr: netip.AddrPortFrom(p.Face, port), peer: p}, snap.Self)
	if err != nil {
		fs.s.stats.peer(p.Name).setFaceError(err.Error())
		return err
	}
	f.erlang.Store(true)
	f.node.Store(&node)
	return nil
}

// distPorts lists the distribution ports learned for peer, with the node
// names their PORT2_RESPs gave, sorted by port.
func (fs *faceSet) distPorts(peer string) []erldist.NameEntry {
	return fs.allDistPorts(peer)[peer]
}

// allDistPorts is distPorts for every peer (or only for peer, if not ""),
// in one pass over the faces: status asks for all peers at once.
func (fs *faceSet) allDistPorts(peer string) map[string][]erldist.NameEntry {
	fs.mu.Lock()
	out := make(map[string][]erldist.NameEntry)
	for k, f := range fs.faces {
		if (peer == "" || k.peer == peer) && !f.epmd && f.erlang.Load() {
			out[k.peer] = append(out[k.peer], erldist.NameEntry{Name: f.nodeName(), Port: k.port})
		}
	}
	fs.mu.Unlock()
	for _, es := range out {
		sort.Slice(es, func(i, j int) bool { return es[i].Port < es[j].Port })
	}
	return out
}

// nodeName is the node f's port was announced for, or "".
func (f *face) nodeName() string {
	if n := f.node.Load(); n != nil {
		return *n
	}
	return ""
}

// openLocked binds one face, records it and has pollSet accept on it.
func (fs *faceSet) openLocked(w wantedFace, self *peers.Peer) (*face, error) {
	erlangPort := w.epmd || !w.expose
	f := &face{key: w.key, addr: w.addr, peerAddr: w.peer.Address, epmd: w.epmd, dark: w.dark}
	if err := fs.poll.listen(f); err != nil {
		return nil, faceError(w.addr, w.peer.Name, self, erlangPort, err)
	}
	f.expose.Store(w.expose)
	fs.faces[w.key] = f
	return f, nil
}

// closeLocked stops a face listener. Connections accepted on it live on
// until the policy or the peer's removal ends them.
func (fs *faceSet) closeLocked(f *face) {
	fs.poll.close(f)
	if fs.faces[f.key] == f {
		delete(fs.faces, f.key)
	}
}

// closeAll closes every listener and refuses new ones.
func (fs *faceSet) closeAll() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.closed = true
	for _, f := range fs.faces {
		fs.closeLocked(f)
	}
	fs.poll.closeAll()
}

// listening reports the ports open on peer's face, sorted (for tests and
// status).
func (fs *faceSet) listening(peer string) []uint16 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []uint16
	for k := range fs.faces {
		if k.peer == peer {
			out = append(out, k.port)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// handle judges one local connection to a peer's face and carries it.
func (fs *faceSet) handle(f *face, c *net.TCPConn) {
	s := fs.s
	snap := s.snap.Load()
	self := snap.Self
	p := snap.File.Peer(f.key.peer)
	if p == nil || p.Face != f.addr.Addr() {
		c.SetLinger(0)
		c.Close()
		return
	}
	st := s.stats.peer(p.Name)
	q := f.question(self, p, s.policyPort(f.key.port))
	v := snap.File.Judge(q)
	s.countDecision(peers.Outbound, p.Name, v.Policy)
	if !v.Allow() {
		st.deniedOut.Add(1)
		c.SetLinger(0) // a reset: refused at once, as a closed port would be
		c.Close()
		s.refuse(peers.Outbound, p.Name, self.Name, p.Name, q.Port, "", v.String())
		return
	}
	tc := s.newTracked(snap, p, peers.Outbound, q.Port, q.Erlang)
	tc.node = q.Node
	if f.epmd {
		tc.epmd = true
		s.proxyEPMD(c, p, tc)
		return
	}
	remote, err := s.dialDist(p, f.key.port)
	if err != nil {
		s.logLimited(slog.LevelInfo, denylog.Key{Who: p.Name, Port: f.key.port, Dir: peers.Outbound, Why: "unreachable"},
			"netstack: peer not reachable", "peer", p.Name, "port", f.key.port, "err", err)
		c.SetLinger(0)
		c.Close()
		return
	}
	s.carry(tc, c, remote, nil)
}

// question is what a local connection to f asks peers.File.Judge: from
// self to p on port (the policy's), an Erlang port when it is p's epmd or
// p's epmd announced it, as the node it was announced for. That holds for
// an exposed port too (see Judge).
func (f *face) question(self, p *peers.Peer, port uint16) peers.Conn {
	q := peers.Conn{From: self, To: p, Port: port, Dir: peers.Outbound, Erlang: f.epmd || f.erlang.Load()}
	if q.Erlang && !f.epmd {
		q.Node = f.nodeName()
	}
	return q
}

// sleepCtx waits d or until ctx is done; false if ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
