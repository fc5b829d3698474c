package peers

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Parser parses successive versions of one peer file, as a daemon does on
// every reload, and reuses the previous parse for peer entries whose text
// has not changed. Adding one peer to a 10,000-peer file then decodes and
// validates one entry, not 10,000 (issue 13: such an edit applies in at
// most 50 ms). Its results and errors are Parse's, line numbers included
// (FuzzParserReuse checks it).
//
// An entry is reused when its lines are byte for byte those of an entry
// of the last file parsed without errors, and what its checks depend on
// is unchanged: overlay.prefix, faces and port, and its network's prefix.
// The Parser keeps that File's peers (read only) and the text of its
// peers section; the File it returned pins no section text.
// Checks across peers (duplicate keys, addresses and names) run over every
// peer each time. Only peers sections in the shapes of the fast path
// (fastpeers.go) are reused; other files are parsed as Parse does.
//
// The zero Parser is ready to use; it is safe for concurrent use.
type Parser struct {
	mu     sync.Mutex
	cache  *reuseCache // entries of the last parse through the fast path
	reused int         // entries the last parse reused, for tests
}

// reuseCache is what one parse without errors leaves for the next.
type reuseCache struct {
	overlay   Overlay
	overlayOK bool
	seq       []reuseEntry // every peer entry, in file order
	// index is seq by text, made on the first miss that the order of the
	// file does not explain: most edits add, change or remove a peer or
	// two, and the next parse finds its entries in the same order.
	index map[string]int
}

// reuseEntry is a peer entry of a File parsed without errors.
type reuseEntry struct {
	text   string // its lines
	peer   *Peer  // in that File, read only
	keyTag string // of its name
	// public_key's and address's lines, from the entry's first line
	keyLine, addrLine int32
}

// find returns the entry whose text is text, or nil. The next entry
// expected is seq[*next] (or the one after, for a peer removed); a hit
// elsewhere moves it on. The first entry not found there is not looked
// for elsewhere (it is most likely the peer added): *misses counts them.
func (c *reuseCache) find(text []byte, next, misses *int) *reuseEntry {
	for i := *next; i < len(c.seq) && i <= *next+1; i++ {
		if c.seq[i].text == string(text) {
			*next = i + 1
			return &c.seq[i]
		}
	}
	if *misses++; *misses == 1 && c.index == nil {
		return nil
	}
	if c.index == nil {
		c.index = make(map[string]int, len(c.seq))
		for i, e := range c.seq {
			if _, dup := c.index[e.text]; !dup {
				c.index[e.text] = i
			}
		}
	}
	i, ok := c.index[string(text)]
	if !ok {
		return nil
	}
	*next = i + 1
	return &c.seq[i]
}

// Parse is Parse(name, data), reusing what it can of the last parse.
func (c *Parser) Parse(name string, data []byte) (*File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reuse := c.cache
	if reuse == nil {
		reuse = &reuseCache{}
	}
	p := &parser{name: name, reuse: reuse}
	f := p.parseFile(data)
	if p.stale {
		// The overlay or a network changed under reused entries: parse
		// everything anew.
		p = &parser{name: name, reuse: &reuseCache{}}
		f = p.parseFile(data)
	}
	// The entries of a file with errors are not kept: they may be
	// incomplete. A file with no peers section in the fast path's shapes
	// leaves nothing to reuse.
	if len(p.errs) == 0 {
		c.cache = p.next
	}
	c.reused = 0
	if p.sec != nil {
		c.reused = p.sec.nhits
	}
	if len(p.errs) > 0 {
		p.errs.sort()
		return nil, p.errs
	}
	return f, nil
}

// CheckUpdate is CheckUpdate parsing with c.
func (c *Parser) CheckUpdate(trusted []ssh.PublicKey, running Version, source string, file, sig []byte, now time.Time) (*Verified, error) {
	return checkUpdate(c.Parse, trusted, running, source, file, sig, now)
}

// reusePeer adds the peer of entry e from r, checking it against the
// peers before it as parsePeers does; it reports false when r does not
// hold in this file, which must then be parsed anew.
func (p *fileParser) reusePeer(e entry, r *reuseEntry, peer *Peer, byKey map[Key]*Peer, byAddr map[netip.Addr]*Peer) bool {
	nw := p.nets[r.peer.Network.Name]
	if nw == nil || nw.Prefix != r.peer.Network.Prefix {
		return false
	}
	*peer = *r.peer
	peer.Network, peer.Line, peer.ID = nw, e.key.Line, len(p.f.Peers)
	p.f.Peers = append(p.f.Peers, peer)
	p.peers[e.name] = peer
	if other := byKey[peer.PublicKey]; other != nil {
		p.errorf(peer.Line+int(r.keyLine), join("peers", e.name)+".public_key", "same key as peer %s (line %d)", other.Name, other.Line)
		peer.PublicKey = Key{}
	} else {
		byKey[peer.PublicKey] = peer
	}
	if other := byAddr[peer.Address]; other != nil {
		p.errorf(peer.Line+int(r.addrLine), join("peers", e.name)+".address", "%s is already the address of peer %s (line %d)", peer.Address, other.Name, other.Line)
		peer.Address, peer.Face = netip.Addr{}, netip.Addr{}
	} else {
		byAddr[peer.Address] = peer
	}
	return true
}
