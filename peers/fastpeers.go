package peers

// A fast path for the peers section of a big file. yaml.v3's scanner costs
// several µs a peer, most of a 10,000-peer file's parse (issue 13: adding
// one peer to such an overlay must apply in 50 ms). Peer entries are
// almost always written in one of two plain shapes, the one overlayctl
// writes and the one people write by hand:
//
//	peers:
//	  a: {network: lab, public_key: K, address: 10.0.0.1, endpoint: h:1}
//	  b:
//	    network: lab
//	    address: 10.0.0.2
//
// fastDecode builds the yaml.Node tree of such a peers section itself, with
// the nodes yaml.v3 would make (kind, style, tag, value, line, column), and
// lets yaml.v3 parse the rest of the file with the section's lines blanked
// out (so that every line number stays). Anything outside the two shapes
// (quotes, anchors, tags, tabs, lists, multi-line values, odd characters)
// makes it give up, and the whole file goes through yaml.v3 as before: the
// fast path only ever produces the tree yaml.v3 would have, so messages and
// results are the same (FuzzFastDecode checks it).

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// fastDecode returns the root node of data, or false if the fast path does
// not apply; it reports no errors.
func fastDecode(data []byte) (*yaml.Node, bool) {
	root, _, ok := fastDecodeReuse(data, nil)
	return root, ok
}

// fastSection is a peers section as fastPeers read it, for Parser.
type fastSection struct {
	node  *yaml.Node    // the peers mapping
	texts []string      // the text of each entry, its lines, in order
	hits  []*reuseEntry // per entry: reused from the last parse, or nil
	nhits int
}

// fastDecodeReuse is fastDecode reusing entries of reuse, when not nil:
// an entry found there is a mapping node without content in the tree
// (one, shared by every such entry), and the returned section says which. The section is nil without reuse
// or when the section holds no entries.
func fastDecodeReuse(data []byte, reuse *reuseCache) (*yaml.Node, *fastSection, bool) {
	start, end, ok := peersSection(data)
	if !ok {
		return nil, nil, false
	}
	firstLine := 1 + bytes.Count(data[:start], []byte{'\n'})
	peers, sec, ok := fastPeers(data[start:end], firstLine, reuse)
	if !ok {
		return nil, nil, false
	}
	// The rest of the file with the section's lines left empty.
	rest := make([]byte, 0, len(data)-(end-start)+bytes.Count(data[start:end], []byte{'\n'}))
	rest = append(rest, data[:start]...)
	for range bytes.Count(data[start:end], []byte{'\n'}) {
		rest = append(rest, '\n')
	}
	rest = append(rest, data[end:]...)
	dec := yaml.NewDecoder(bytes.NewReader(rest))
	var doc, extra yaml.Node
	if dec.Decode(&doc) != nil || !errors.Is(dec.Decode(&extra), io.EOF) {
		return nil, nil, false
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, nil, false
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode || root.Style != 0 || root.Column != 1 {
		return nil, nil, false
	}
	// The key must be the root's, on the line where the section was found:
	// not text inside a quoted or block scalar that happens to look like it.
	keyLine := firstLine - 1
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Line != keyLine {
			continue
		}
		if k.Kind != yaml.ScalarNode || k.Style != 0 || k.Value != "peers" || k.Column != 1 ||
			v.Kind != yaml.ScalarNode || v.Style != 0 || v.Tag != "!!null" || v.Value != "" || v.Anchor != "" {
			return nil, nil, false
		}
		if peers != nil {
			root.Content[i+1] = peers
		}
		return root, sec, true
	}
	return nil, nil, false
}

// peersSection finds a line "peers:" at column 0 (trailing spaces allowed)
// and returns the byte range of the lines after it up to the next line
// that starts at column 0 with anything but a comment.
func peersSection(data []byte) (start, end int, ok bool) {
	for i := 0; i < len(data); {
		line, next := lineAt(data, i)
		if string(bytes.TrimRight(line, " ")) == "peers:" {
			start = next
			for end = next; end < len(data); {
				l, n := lineAt(data, end)
				if len(l) > 0 && l[0] != ' ' && l[0] != '#' {
					break
				}
				end = n
			}
			return start, end, true
		}
		i = next
	}
	return 0, 0, false
}

// lineAt returns the line starting at i without its newline, and where the
// next one starts.
func lineAt(data []byte, i int) (line []byte, next int) {
	j := bytes.IndexByte(data[i:], '\n')
	if j < 0 {
		return data[i:], len(data)
	}
	return data[i : i+j], i + j + 1
}

// fastPeers builds the mapping node of a peers section whose first line is
// line first, nil for a section of only blank and comment lines. With
// reuse, it also returns the section's entries, and an entry whose text
// reuse holds gets a mapping node without content (one, shared by all).
func fastPeers(sec []byte, first int, reuse *reuseCache) (*yaml.Node, *fastSection, bool) {
	// Comments are dropped unread: make sure that they hold nothing
	// yaml.v3 would refuse (control characters, bad UTF-8).
	for _, c := range sec {
		if (c < ' ' || c > '~') && c != '\n' {
			return nil, nil, false
		}
	}
	var fs *fastSection
	want, misses := 0, 0  // the entry of reuse expected next; see find
	var reused *yaml.Node // the value of every entry reused: parsePeers reads only its key
	if reuse != nil {
		// Sized for a file like the last one: most reloads change a
		// peer or two.
		n := len(reuse.seq) + 16
		fs = &fastSection{texts: make([]string, 0, n), hits: make([]*reuseEntry, 0, n)}
	}
	// Values are cut from one copy of the section; keys, which the File
	// keeps as peer names, get their own so as not to pin it. With
	// entries to reuse, from a copy of each entry not reused: the others
	// need none.
	a := nodeArena{}
	whole := reuse == nil || len(reuse.seq) == 0
	if whole {
		a.src = string(sec)
	}
	var m *yaml.Node
	indent, fieldIndent := -1, -1
	var block *yaml.Node // the block mapping of the entry being read
	line := first
	for i := 0; i < len(sec); line++ {
		l, next := lineAt(sec, i)
		a.base = i
		i = next
		col := 0
		for col < len(l) && l[col] == ' ' {
			col++
		}
		if col == len(l) || l[col] == '#' {
			continue // blank or comment
		}
		switch {
		case indent < 0 || col == indent:
			if block != nil && len(block.Content) == 0 {
				return nil, nil, false // an entry with no fields: null, not a mapping
			}
			block = nil
			indent, fieldIndent = col, -1
			if m == nil {
				m = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: line, Column: col + 1}
				if fs != nil {
					m.Content = make([]*yaml.Node, 0, 2*cap(fs.texts))
				}
			}
			if fs != nil {
				// The entry's lines are read (and accepted) just as
				// they were when reuse was made from them.
				end, more := entryEnd(sec, i, indent)
				r := reuse.find(sec[a.base:end], &want, &misses)
				if r == nil {
					if !whole {
						a.src, a.srcAt = string(sec[a.base:end]), a.base
					}
					fs.texts = append(fs.texts, a.src[a.base-a.srcAt:end-a.srcAt])
				} else {
					fs.texts = append(fs.texts, r.text)
				}
				fs.hits = append(fs.hits, r)
				if r != nil {
					k := a.node()
					*k = yaml.Node{Kind: yaml.ScalarNode, Tag: r.keyTag, Value: r.peer.Name, Line: line, Column: col + 1}
					if reused == nil {
						reused = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
					}
					m.Content = append(m.Content, k, reused)
					fs.nhits++
					i, line = end, line+more
					continue
				}
			}
			k, rest, ok := a.fastKey(l, col, line)
			if !ok {
				return nil, nil, false
			}
			var v *yaml.Node
			if rest < len(l) && l[rest] == '{' {
				if v, ok = a.fastFlow(l, rest, line); !ok {
					return nil, nil, false
				}
			} else if !endOfLine(l, rest) {
				return nil, nil, false
			} else {
				v = a.node()
				*v = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: make([]*yaml.Node, 0, 10)}
				block = v
			}
			m.Content = append(m.Content, k, v)
		case block != nil && col > indent && (fieldIndent < 0 || col == fieldIndent):
			fieldIndent = col
			k, rest, ok := a.fastKey(l, col, line)
			if !ok || rest >= len(l) {
				return nil, nil, false
			}
			v, end, ok := a.fastScalar(l, rest, line, false)
			if !ok || !endOfLine(l, end) {
				return nil, nil, false
			}
			if len(block.Content) == 0 {
				block.Line, block.Column = line, col+1
			}
			block.Content = append(block.Content, k, v)
		default:
			return nil, nil, false
		}
	}
	if block != nil && len(block.Content) == 0 {
		return nil, nil, false
	}
	if fs == nil || m == nil {
		return m, nil, true
	}
	fs.node = m
	return m, fs, true
}

// entryEnd is where the entry whose first line ends at i (after its
// newline) ends: before the next line, not blank nor a comment, indented
// by at most indent; more is how many lines it has after the first.
func entryEnd(sec []byte, i, indent int) (end, more int) {
	for i < len(sec) {
		l, next := lineAt(sec, i)
		col := 0
		for col < len(l) && l[col] == ' ' {
			col++
		}
		if col < len(l) && l[col] != '#' && col <= indent {
			break
		}
		i = next
		more++
	}
	return i, more
}

// fastKey reads "key: " or "key:" at the end of the line, starting at col,
// and returns the key and where its value starts.
func (a *nodeArena) fastKey(l []byte, col, line int) (*yaml.Node, int, bool) {
	k, end, ok := a.fastScalar(l, col, line, true)
	if !ok || end >= len(l) || l[end] != ':' {
		return nil, 0, false
	}
	end++
	if end == len(l) {
		return k, end, true
	}
	if l[end] != ' ' {
		return nil, 0, false
	}
	for end < len(l) && l[end] == ' ' {
		end++
	}
	return k, end, true
}

// fastFlow reads a one-line flow mapping "{k: v, k: v}" at l[i] and what
// may follow it on the line.
func (a *nodeArena) fastFlow(l []byte, i, line int) (*yaml.Node, bool) {
	m := a.node()
	*m = yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle, Tag: "!!map", Line: line, Column: i + 1, Content: make([]*yaml.Node, 0, 10)}
	i++
	for i < len(l) && l[i] == ' ' {
		i++
	}
	if i < len(l) && l[i] == '}' {
		return nil, false // {} is rare; leave it to yaml.v3
	}
	for {
		k, end, ok := a.fastScalar(l, i, line, true)
		if !ok || end+1 >= len(l) || l[end] != ':' || l[end+1] != ' ' {
			return nil, false
		}
		i = end + 1
		for i < len(l) && l[i] == ' ' {
			i++
		}
		v, end, ok := a.fastScalar(l, i, line, false)
		if !ok {
			return nil, false
		}
		m.Content = append(m.Content, k, v)
		i = end
		for i < len(l) && l[i] == ' ' {
			i++
		}
		if i >= len(l) {
			return nil, false
		}
		switch l[i] {
		case ',':
			i++
			for i < len(l) && l[i] == ' ' {
				i++
			}
		case '}':
			return m, endOfLine(l, i+1)
		default:
			return nil, false
		}
	}
}

// fastScalar reads a plain scalar of a safe alphabet at l[i]: it starts
// with a letter or digit (or, for a value such as a base64 key, / or +) and holds letters, digits and . _ - / + = and
// ':' before a letter or digit. Such a scalar means the same in block and
// flow context, and yaml.v3 resolves its tag from its text alone.
func (a *nodeArena) fastScalar(l []byte, i, line int, key bool) (*yaml.Node, int, bool) {
	start := i
	if i >= len(l) || !alnum(l[i]) && (key || l[i] != '/' && l[i] != '+') {
		return nil, 0, false
	}
	for i < len(l) {
		c := l[i]
		switch {
		case alnum(c), c == '.', c == '_', c == '-', c == '/', c == '+', c == '=':
		case c == ':' && !key && i+1 < len(l) && alnum(l[i+1]):
		default:
			goto done
		}
		i++
	}
done:
	// yaml.v3 refuses a simple key longer than 1024 characters; keep well
	// clear of such limits.
	if i-start > 512 || key && i-start > 128 {
		return nil, 0, false
	}
	n := a.node()
	*n = yaml.Node{Kind: yaml.ScalarNode, Value: a.text(l, start, i, key), Line: line, Column: start + 1}
	n.Tag = plainTag(n)
	if n.Tag == "!!merge" {
		return nil, 0, false
	}
	return n, i, true
}

// plainTag is the tag yaml.v3 gives plain scalar n: n.ShortTag(), which
// resolves it from its text, but without trying to read as a number or a
// time a text that can not be one (an address, an endpoint, a key).
func plainTag(n *yaml.Node) string {
	v := n.Value
	switch v[0] {
	case '+', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		// yaml.v3 tries a timestamp (four digits and '-'), then an integer
		// or a float: digits, signs, '_', one '.', and the letters of 0x,
		// 0o, 0b, hex digits and exponents.
		if len(v) > 4 && v[4] == '-' || strings.Contains(v, ".inf") || strings.Contains(v, ".Inf") || strings.Contains(v, ".INF") {
			break
		}
		if strings.Count(v, ".") >= 2 || strings.Trim(v, "0123456789abcdefABCDEFxXoO+-._") != "" {
			return "!!str"
		}
	case 'y', 'Y', 'n', 'N', 't', 'T', 'f', 'F', 'o', 'O', '~', '.', '<':
	default:
		return "!!str"
	}
	return n.ShortTag()
}

// endOfLine reports whether l holds from i only spaces and perhaps a
// comment after a space.
func endOfLine(l []byte, i int) bool {
	j := i
	for j < len(l) && l[j] == ' ' {
		j++
	}
	return j == len(l) || l[j] == '#' && j > 0 && l[j-1] == ' '
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// nodeArena hands out nodes from blocks: a 10,000-peer section has some
// 120,000 of them, and one allocation each was a third of its parse. It
// also keeps one copy of each short key (network, address, ...), which
// every peer repeats.
type nodeArena struct {
	free  []yaml.Node
	keys  map[string]string
	src   string // the section, or the entry being read, from srcAt on
	srcAt int    // where in the section src starts
	base  int    // where in the section the line being read starts
}

// text is l[start:end] as a string; l is the line at a.base in the
// section.
func (a *nodeArena) text(l []byte, start, end int, key bool) string {
	if !key {
		return a.src[a.base-a.srcAt+start : a.base-a.srcAt+end]
	}
	b := l[start:end]
	if len(b) > 16 {
		return string(b)
	}
	if s, ok := a.keys[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(a.keys) < 64 {
		if a.keys == nil {
			a.keys = make(map[string]string)
		}
		a.keys[s] = s
	}
	return s
}

func (a *nodeArena) node() *yaml.Node {
	if len(a.free) == 0 {
		a.free = make([]yaml.Node, 1024)
	}
	n := &a.free[0]
	a.free = a.free[1:]
	return n
}
