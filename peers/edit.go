package peers

// Comment-preserving edits of a peer file.
//
// The peer file is written and commented by people, so a tool that edits it
// must leave everything it does not change byte for byte as it was: comments,
// blank lines, key order, quoting, alignment. Re-encoding with yaml.v3 loses
// blank lines and reindents, so these functions edit the text instead: they
// parse it into a yaml.Node only to learn where sections and entries sit and
// how they are indented, then splice whole lines in or out.
//
// The functions here only edit; they do not validate. Callers re-parse the
// result with Parse and keep it only if it is valid.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// PeerEntry is a peer to add with AddPeer. Empty optional fields are left
// out of the file.
type PeerEntry struct {
	Name      string
	Network   string
	PublicKey string // base64, as `wg pubkey` prints it
	Address   netip.Addr
	Endpoint  string        // optional, "host:port" or "host"
	Keepalive time.Duration // optional
	Expose    []string      // optional ports and ranges, as written in the file ("9100-9199")
	Mode      Mode          // optional; userspace (the default) is not written
	// TCPEndpoint is optional, "host:port" or "host"; Transport auto (the
	// default) is not written.
	TCPEndpoint string
	Transport   Transport
}

// RuleEntry is an interconnect rule to add with AddRule.
type RuleEntry struct {
	From, To string   // network or peer names
	Both     bool     // write `between: [From, To]` instead of from/to
	Ports    []string // `ports:` items ("erlang", "4369", "9100-9199"); nil for all ports
}

// AddNetwork returns data with network name (prefix) appended to the
// `networks:` section, written like the entries already there. The section
// is created if missing.
func AddNetwork(data []byte, name string, prefix netip.Prefix) ([]byte, error) {
	if err := editCheckName("network", name); err != nil {
		return nil, err
	}
	if !prefix.IsValid() {
		return nil, fmt.Errorf("network %s: invalid prefix", name)
	}
	d, err := newEditDoc(data)
	if err != nil {
		return nil, err
	}
	if s := d.section("networks"); s != nil && s.val.Kind == yaml.MappingNode {
		for i := 0; i < len(s.val.Content); i += 2 {
			if s.val.Content[i].Value == name {
				return nil, fmt.Errorf("network %s already exists (line %d)", name, s.val.Content[i].Line)
			}
		}
	}
	fields := []editField{{"prefix", prefix.Masked().String()}}
	err = d.appendEntry("networks", yaml.MappingNode, true, func(st editStyle) []string {
		return st.mapEntry(name, fields)
	})
	if err != nil {
		return nil, err
	}
	return d.result()
}

// AddPeer returns data with peer p appended at the end of the `peers:`
// section, indented and styled like the peers already there. The section is
// created if missing.
func AddPeer(data []byte, p PeerEntry) ([]byte, error) {
	if err := editCheckName("peer", p.Name); err != nil {
		return nil, err
	}
	if p.Network == "" || p.PublicKey == "" || !p.Address.IsValid() {
		return nil, fmt.Errorf("peer %s: network, public key and address are required", p.Name)
	}
	d, err := newEditDoc(data)
	if err != nil {
		return nil, err
	}
	if s := d.section("peers"); s != nil && s.val.Kind == yaml.MappingNode {
		for i := 0; i < len(s.val.Content); i += 2 {
			if s.val.Content[i].Value == p.Name {
				return nil, fmt.Errorf("peer %s already exists (line %d)", p.Name, s.val.Content[i].Line)
			}
		}
	}
	fields := []editField{
		{"network", editScalar(p.Network, false)},
		{"public_key", editScalar(p.PublicKey, false)},
		{"address", p.Address.String()},
	}
	if p.Endpoint != "" {
		fields = append(fields, editField{"endpoint", editScalar(p.Endpoint, false)})
	}
	if p.Keepalive != 0 {
		fields = append(fields, editField{"keepalive", p.Keepalive.String()})
	}
	if len(p.Expose) > 0 {
		fields = append(fields, editField{"expose", editList(p.Expose)})
	}
	if p.Mode != ModeUserspace {
		fields = append(fields, editField{"mode", p.Mode.String()})
	}
	if p.TCPEndpoint != "" {
		fields = append(fields, editField{"tcp_endpoint", editScalar(p.TCPEndpoint, false)})
	}
	if p.Transport != TransportAuto {
		fields = append(fields, editField{"transport", p.Transport.String()})
	}
	err = d.appendEntry("peers", yaml.MappingNode, false, func(st editStyle) []string {
		return st.mapEntry(p.Name, fields)
	})
	if err != nil {
		return nil, err
	}
	return d.result()
}

// AddRule returns data with rule r appended to the `interconnect:` section,
// written like the rules already there. The section is created if missing.
func AddRule(data []byte, r RuleEntry) ([]byte, error) {
	if r.From == "" || r.To == "" {
		return nil, errors.New("rule: both ends must be named")
	}
	d, err := newEditDoc(data)
	if err != nil {
		return nil, err
	}
	var fields []editField
	if r.Both {
		fields = append(fields, editField{"between", editList([]string{r.From, r.To})})
	} else {
		fields = append(fields, editField{"from", editScalar(r.From, false)}, editField{"to", editScalar(r.To, false)})
	}
	if r.Ports != nil {
		fields = append(fields, editField{"ports", editList(r.Ports)})
	}
	err = d.appendEntry("interconnect", yaml.SequenceNode, false, func(st editStyle) []string {
		return st.seqItem(fields)
	})
	if err != nil {
		return nil, err
	}
	return d.result()
}

// RemovePeer returns data without peer name: its key line through its last
// line. Comments directly above its key (same indentation, no blank line in
// between) are taken to describe the peer and go with it; a comment separated
// from the peer by a blank line, or indented like the section's key, stays.
// Comments after the peer's last line at its own indentation or less belong
// to what follows and stay too.
func RemovePeer(data []byte, name string) ([]byte, error) {
	d, err := newEditDoc(data)
	if err != nil {
		return nil, err
	}
	s := d.section("peers")
	if s == nil || s.val.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("peer %s not found", name)
	}
	if s.val.Style&yaml.FlowStyle != 0 && len(s.val.Content) > 0 {
		return nil, fmt.Errorf("peers: written in flow style ({...}); rewrite it as a block to edit it")
	}
	es := d.entries(s)
	i := -1
	for j, e := range es {
		if e.key.Value == name {
			i = j
		}
	}
	if i < 0 {
		return nil, fmt.Errorf("peer %s not found", name)
	}
	from, to := es[i].start, d.entryEnd(s, es, i)
	lower := s.key.Line // the head comment cannot reach above this line
	if i > 0 {
		lower = d.entryEnd(s, es, i-1)
	}
	for from-1 > lower && d.comment(from-1) && editIndent(d.text(from-1)) == es[i].col-1 {
		from--
	}
	// Do not leave two blank lines where there was one, a blank line at the
	// end of the file, nor one right under the section's key.
	switch {
	case from > 1 && d.blank(from-1) && to < len(d.lines) && d.blank(to+1):
		to++
	case from > 1 && d.blank(from-1) && to == len(d.lines):
		from--
	case i == 0 && i+1 < len(es):
		for to+1 < es[i+1].start && d.blank(to+1) {
			to++
		}
	}
	d.lines = append(d.lines[:from-1], d.lines[to:]...)
	return d.result()
}

// WriteFileAtomic replaces path with data so that readers (and a crash) see
// either the old file or the new one, never a mix: it writes a temporary
// file in the same directory, syncs it and renames it over path. An existing
// file keeps its permission bits (perm is used only for a new file) and a
// symbolic link at path stays a link: its target is replaced.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write %s: %w", path, err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename itself durable. Best effort: the file is already in
	// place, and some systems cannot sync a directory.
	if df, derr := os.Open(dir); derr == nil {
		df.Sync()
		df.Close()
	}
	return nil
}

// editDoc is a peer file as lines, with its top-level mapping to find
// sections by. Line numbers are 1-based, as in yaml.Node.
type editDoc struct {
	lines []string // each with its line terminator (the last may have none)
	eol   string   // the file's line terminator, for inserted lines
	root  *yaml.Node
}

// result is the edited text if it still parses. The editor splices lines
// by the layouts it knows; one it does not (a section whose value is a
// bare "?" key, say) must end in an error, never in a file that is no
// longer YAML.
func (d *editDoc) result() ([]byte, error) {
	out := d.bytes()
	var doc any
	if err := yaml.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("this part of the file is laid out in a way the editor does not know (the edit would give: %v); edit it by hand", err)
	}
	return out, nil
}

func newEditDoc(data []byte) (*editDoc, error) {
	// Lines are spliced as UTF-8; yaml.v3 would read a UTF-16 file too.
	if !utf8.Valid(data) {
		return nil, errors.New("parse peer file: not UTF-8 text")
	}
	// YAML also breaks lines at a lone \r (old Mac line ends); lines here
	// end in \n.
	if bytes.Contains(bytes.ReplaceAll(data, []byte("\r\n"), nil), []byte("\r")) {
		return nil, errors.New("parse peer file: carriage return without a newline; use \\n or \\r\\n line ends")
	}
	var doc, next yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse peer file: %w", err)
	}
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse peer file: more than one YAML document")
	}
	d := &editDoc{eol: "\n"}
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if l != "" {
			d.lines = append(d.lines, l)
		}
	}
	if len(d.lines) > 0 && strings.HasSuffix(d.lines[0], "\r\n") {
		d.eol = "\r\n"
	}
	// Sections run to the end of the file; an explicit end of the document
	// would have new ones land after it, outside the document.
	for i := range d.lines {
		if t := d.text(i + 1); t == "..." || strings.HasPrefix(t, "... ") || strings.HasPrefix(t, "...\t") {
			return nil, fmt.Errorf("peer file: line %d: remove the end-of-document marker (...) to edit the file", i+1)
		}
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		r := doc.Content[0]
		switch {
		case r.Kind == yaml.MappingNode && r.Style&yaml.FlowStyle == 0:
			d.root = r
			for i := 0; i < len(r.Content); i += 2 {
				if k := r.Content[i]; k.Column != r.Column {
					return nil, fmt.Errorf("peer file: line %d: explicit keys (? key) are not supported; write key: value", k.Line)
				}
			}
		case r.Kind == yaml.MappingNode:
			return nil, errors.New("peer file: top level written in flow style ({...}); rewrite it as a block to edit it")
		case r.Kind == yaml.ScalarNode && r.Tag == "!!null" && r.Value == "":
			// nothing but comments
		default:
			return nil, errors.New("peer file: top level is not a mapping")
		}
	}
	return d, nil
}

func (d *editDoc) bytes() []byte {
	return []byte(strings.Join(d.lines, ""))
}

// text is line n without its terminator.
func (d *editDoc) text(n int) string {
	return strings.TrimRight(d.lines[n-1], "\r\n")
}

func (d *editDoc) blank(n int) bool {
	return strings.TrimSpace(d.lines[n-1]) == ""
}

func (d *editDoc) comment(n int) bool {
	return strings.HasPrefix(strings.TrimSpace(d.lines[n-1]), "#")
}

// insert puts lines (without terminators) after line n (0: at the top).
func (d *editDoc) insert(n int, lines []string) {
	if n > 0 && n == len(d.lines) && !strings.HasSuffix(d.lines[n-1], "\n") {
		d.lines[n-1] += d.eol
	}
	add := make([]string, len(lines))
	for i, l := range lines {
		add[i] = l + d.eol
	}
	d.lines = append(d.lines[:n], append(add, d.lines[n:]...)...)
}

// editSection is one top-level key of the file and its value.
type editSection struct {
	key, val *yaml.Node
	limit    int // last line that can belong to it: the line before the next top-level key
}

func (d *editDoc) section(name string) *editSection {
	if d.root == nil {
		return nil
	}
	c := d.root.Content
	for i := 0; i+1 < len(c); i += 2 {
		if c[i].Value != name {
			continue
		}
		s := &editSection{key: c[i], val: c[i+1], limit: len(d.lines)}
		if i+2 < len(c) {
			s.limit = c[i+2].Line - 1
		}
		return s
	}
	return nil
}

// editEntry is one entry of a block section: a key and value of a mapping,
// or an item of a sequence.
type editEntry struct {
	start int // first line: the key's, or the item's dash
	col   int // column of the key, or of the dash
	key   *yaml.Node
	val   *yaml.Node
}

func (d *editDoc) entries(s *editSection) []editEntry {
	var es []editEntry
	v := s.val
	switch v.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(v.Content); i += 2 {
			k := v.Content[i]
			es = append(es, editEntry{start: k.Line, col: k.Column, key: k, val: v.Content[i+1]})
		}
	case yaml.SequenceNode:
		for _, it := range v.Content {
			e := editEntry{start: it.Line, col: v.Column, val: it}
			// "-" alone on its line (or with a comment), the item below it
			if p := it.Line - 1; p >= 1 && loneDash(d.text(p)) {
				e.start = p
			}
			es = append(es, e)
		}
	}
	return es
}

// loneDash reports whether line is a sequence item's dash with nothing
// after it but a comment.
func loneDash(line string) bool {
	t := strings.TrimSpace(line)
	if !strings.HasPrefix(t, "-") {
		return false
	}
	rest := t[1:]
	return rest == "" || strings.TrimLeft(rest, " \t") != rest && strings.HasPrefix(strings.TrimSpace(rest), "#")
}

// entryEnd is the last line of entry i: the last line before the next entry
// (or the end of the section) that is not blank and is not a comment
// indented at most as deep as the entry. Such trailing comments introduce
// what follows.
func (d *editDoc) entryEnd(s *editSection, es []editEntry, i int) int {
	limit := s.limit
	if i+1 < len(es) {
		limit = es[i+1].start - 1
	}
	return d.contentEnd(es[i].start, limit, es[i].col)
}

func (d *editDoc) contentEnd(start, limit, col int) int {
	for n := limit; n > start; n-- {
		if d.blank(n) || d.comment(n) && editIndent(d.text(n)) < col {
			continue
		}
		return n
	}
	return start
}

// unit is the file's indentation step, from the first block mapping nested
// in a section; 2 if there is none.
func (d *editDoc) unit() int {
	if d.root != nil {
		c := d.root.Content
		for i := 1; i < len(c); i += 2 {
			v := c[i]
			if v.Kind == yaml.MappingNode && v.Style&yaml.FlowStyle == 0 && len(v.Content) > 0 && v.Content[0].Column > c[i-1].Column {
				return v.Content[0].Column - c[i-1].Column
			}
		}
	}
	return 2
}

// editStyle is how the existing entries of a section are written, so that a
// new entry can look the same.
type editStyle struct {
	indent     int  // spaces before an entry's key or dash
	child      int  // spaces before the keys inside a block entry
	dashGap    int  // spaces between a dash and its item's first key
	flow       bool // the entry's value is written {a: b, ...}
	align      int  // column (1-based) where entry values start; 0: one space after the colon
	fieldAlign int  // column where the values inside a block entry start; 0: one space after the colon
	spaced     bool // entries are separated by a blank line
}

type editField struct{ key, value string } // value already rendered

// mapEntry renders a mapping entry "name: {k: v, ...}" or a block.
func (st editStyle) mapEntry(name string, fields []editField) []string {
	key := strings.Repeat(" ", st.indent) + editScalar(name, false) + ":"
	if st.flow {
		return []string{editPad(key, st.align) + editFlow(fields)}
	}
	lines := []string{key}
	for _, f := range fields {
		lines = append(lines, editPad(strings.Repeat(" ", st.child)+f.key+":", st.fieldAlign)+f.value)
	}
	return lines
}

// seqItem renders a sequence item "- {k: v, ...}" or "- k: v" and the rest
// of its keys below.
func (st editStyle) seqItem(fields []editField) []string {
	dash := strings.Repeat(" ", st.indent) + "-"
	if st.flow {
		return []string{dash + " " + editFlow(fields)}
	}
	var lines []string
	for i, f := range fields {
		prefix := strings.Repeat(" ", st.child)
		if i == 0 {
			prefix = dash + strings.Repeat(" ", max(st.dashGap, 1))
		}
		lines = append(lines, editPad(prefix+f.key+":", st.fieldAlign)+f.value)
	}
	return lines
}

func editFlow(fields []editField) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f.key + ": " + f.value
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// editPad pads s ("key:") so that what follows starts at column col, with at
// least one space.
func editPad(s string, col int) string {
	n := col - 1 - utf8.RuneCountInString(s)
	return s + strings.Repeat(" ", max(n, 1))
}

// styleOf reads the style of a block section's entries, mostly from the last
// one, which the new entry will follow.
func (d *editDoc) styleOf(s *editSection, es []editEntry, defFlow bool) editStyle {
	last := es[len(es)-1]
	unit := d.unit()
	st := editStyle{indent: last.col - 1, dashGap: 1, flow: defFlow}
	st.child = st.indent + unit
	body := last.val // the mapping holding the entry's fields
	if s.val.Kind == yaml.SequenceNode {
		st.flow = body.Style&yaml.FlowStyle != 0
		if body.Kind == yaml.MappingNode && !st.flow && body.Line == last.start {
			st.dashGap = max(body.Column-last.col-1, 1)
		}
		// A block mapping in a sequence item continues in the column of
		// its first key, right after "- ", whatever the file's indent
		// unit (a last entry that is a plain scalar says nothing else).
		st.child = st.indent + 1 + st.dashGap
	} else {
		if body.Kind == yaml.MappingNode {
			st.flow = body.Style&yaml.FlowStyle != 0
		}
		if body.Kind == yaml.MappingNode && !st.flow && len(body.Content) > 0 {
			st.child = body.Content[0].Column - 1
		}
		// Entry values aligned in a column, as in "payments:   {prefix: ...}"?
		var keys, vals []*yaml.Node
		for _, e := range es {
			if e.val.Kind == yaml.MappingNode && e.val.Style&yaml.FlowStyle != 0 {
				keys, vals = append(keys, e.key), append(vals, e.val)
			}
		}
		st.align = editAligned(keys, vals)
	}
	if body.Kind == yaml.MappingNode && !st.flow {
		var keys, vals []*yaml.Node
		for i := 0; i+1 < len(body.Content); i += 2 {
			keys, vals = append(keys, body.Content[i]), append(vals, body.Content[i+1])
		}
		st.fieldAlign = editAligned(keys, vals)
	}
	// Entries separated by blank lines?
	if n := len(es); n >= 2 {
		for l := d.entryEnd(s, es, n-2) + 1; l < es[n-1].start; l++ {
			if d.blank(l) {
				st.spaced = true
			}
		}
	}
	return st
}

// editAligned returns the column at which the values of keys start when
// they all start at one column further right than one space after the
// colon would put them (for at least one key); 0 otherwise.
func editAligned(keys, vals []*yaml.Node) int {
	col, padded := 0, false
	for i, k := range keys {
		v := vals[i]
		if v.Line != k.Line {
			return 0
		}
		if col != 0 && v.Column != col {
			return 0
		}
		col = v.Column
		if v.Column > k.Column+utf8.RuneCountInString(k.Value)+2 {
			padded = true
		}
	}
	if !padded {
		return 0
	}
	return col
}

// appendEntry adds the lines render returns at the end of section name,
// whose value must be a block of kind (or empty). It creates the section if
// needed, and turns an empty `name: {}` / `name: []` / `name: ~` into a block.
func (d *editDoc) appendEntry(name string, kind yaml.Kind, defFlow bool, render func(editStyle) []string) error {
	unit := d.unit()
	def := editStyle{indent: unit, child: 2 * unit, dashGap: 1, flow: defFlow}
	if kind == yaml.SequenceNode {
		def.child = unit + 2
	}
	s := d.section(name)
	if s == nil {
		// A new section, indented like the others.
		ind := d.rootIndent()
		def.indent += ind
		def.child += ind
		d.createSection(name, append([]string{strings.Repeat(" ", ind) + name + ":"}, render(def)...))
		return nil
	}
	v := s.val
	null := v.Kind == yaml.ScalarNode && v.Tag == "!!null"
	if !null && v.Kind != kind {
		what := "a mapping"
		if kind == yaml.SequenceNode {
			what = "a list"
		}
		return fmt.Errorf("line %d: %s: should be %s", v.Line, name, what)
	}
	if null || len(v.Content) == 0 {
		if v.Kind != yaml.ScalarNode || d.written(v) {
			if err := d.stripValue(name, v); err != nil {
				return err
			}
			s = d.section(name)
		}
		def.indent = s.key.Column - 1 + unit
		def.child = def.indent + unit
		if kind == yaml.SequenceNode {
			def.child = def.indent + 2
		}
		after := s.key.Line
		for after < s.limit && d.comment(after+1) && editIndent(d.text(after+1)) >= s.key.Column {
			after++
		}
		d.insert(after, render(def))
		return nil
	}
	if v.Style&yaml.FlowStyle != 0 {
		return fmt.Errorf("line %d: %s: written in flow style; rewrite it as a block to edit it", v.Line, name)
	}
	es := d.entries(s)
	st := d.styleOf(s, es, defFlow)
	lines := render(st)
	if st.spaced {
		lines = append([]string{""}, lines...)
	}
	d.insert(d.entryEnd(s, es, len(es)-1), lines)
	return nil
}

// written reports whether the null value v is written out ("~", "null", a
// tag such as "!" or "!!null"), not left empty: an empty value's position
// is right after its key's colon, where only blanks or a comment follow.
func (d *editDoc) written(v *yaml.Node) bool {
	if v.Line < 1 || v.Line > len(d.lines) {
		return false
	}
	t := d.text(v.Line)
	rest := strings.TrimSpace(t[editByteCol(t, v.Column):])
	return rest != "" && !strings.HasPrefix(rest, "#")
}

// stripValue removes an empty value ("{}", "[]", "~", "null", a tag on
// nothing) after a section key, keeping a comment after it, and re-reads
// the document.
func (d *editDoc) stripValue(name string, v *yaml.Node) error {
	t := d.text(v.Line)
	start := editByteCol(t, v.Column)
	// A scalar as written, up to a blank: longer than v.Value for a tag
	// ("!!null" has the value "").
	end := start + strings.IndexAny(t[start:]+" ", " \t")
	if v.Kind != yaml.ScalarNode {
		i := strings.IndexAny(t[start:], "}]")
		if i < 0 {
			return fmt.Errorf("line %d: %s: empty value spans lines; write it as %s: {} or leave it empty", v.Line, name, name)
		}
		end = start + i + 1
	}
	rest := strings.TrimSpace(t[end:])
	nt := strings.TrimRight(t[:start], " ")
	if rest != "" {
		if !strings.HasPrefix(rest, "#") {
			return fmt.Errorf("line %d: %s: cannot edit this line", v.Line, name)
		}
		nt += " " + rest
	}
	eol := d.lines[v.Line-1][len(t):]
	if strings.TrimSpace(nt) == "" {
		d.lines = append(d.lines[:v.Line-1], d.lines[v.Line:]...)
	} else {
		d.lines[v.Line-1] = nt + eol
	}
	nd, err := newEditDoc(d.bytes())
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	*d = *nd
	return nil
}

// createSection inserts body (a top-level key and its entries) after the
// section that precedes it in the usual order of a peer file, or at the end.
func (d *editDoc) createSection(name string, body []string) {
	order := []string{"overlay", "networks", "interconnect", "tests", "peers"}
	after := -1
	i := slices.Index(order, name)
	for j := i - 1; j >= 0 && after < 0; j-- {
		if s := d.section(order[j]); s != nil {
			after = d.contentEnd(s.key.Line, s.limit, s.key.Column)
		}
	}
	switch {
	case len(d.lines) == 0:
		d.insert(0, body)
	case after >= 0:
		// Sections spaced by blank lines get them too.
		next := after < len(d.lines)
		if next && d.blank(after+1) || d.spacedSections() {
			body = append([]string{""}, body...)
			if next && !d.blank(after+1) {
				body = append(body, "")
			}
		}
		d.insert(after, body)
	default:
		if !d.blank(len(d.lines)) && d.spacedSections() {
			body = append([]string{""}, body...)
		}
		d.insert(len(d.lines), body)
	}
}

// rootIndent is the indentation of the top-level keys: 0 but in odd files.
func (d *editDoc) rootIndent() int {
	if d.root == nil || len(d.root.Content) == 0 {
		return 0
	}
	return d.root.Column - 1
}

// spacedSections reports whether the last top-level key (with its head
// comment) is preceded by a blank line, or the file has no keys yet.
func (d *editDoc) spacedSections() bool {
	if d.root == nil || len(d.root.Content) < 2 {
		return true
	}
	n := d.root.Content[len(d.root.Content)-2].Line - 1
	for n >= 1 && d.comment(n) {
		n--
	}
	return n >= 1 && d.blank(n)
}

// editIndent is the number of leading spaces of s.
func editIndent(s string) int {
	return len(s) - len(strings.TrimLeft(s, " "))
}

// editByteCol converts a 1-based column in runes, as yaml.Node has it, to
// a byte offset in s.
func editByteCol(s string, col int) int {
	i := 0
	for n := 1; n < col && i < len(s); n++ {
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	return i
}

func editCheckName(what, name string) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("%s name is empty", what)
	}
	if strings.ContainsAny(name, "\r\n") {
		return fmt.Errorf("%s name %q: contains a line break", what, name)
	}
	return nil
}

// editList renders items as a flow sequence "[a, b]". Items that read as a
// plain scalar of any type (numbers, ranges, words) are written as they are.
func editList(items []string) string {
	out := make([]string, len(items))
	for i, it := range items {
		if editPlain(it, true, false) {
			out[i] = it
		} else {
			out[i] = editQuote(it)
		}
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// editScalar renders s as a YAML string: plain when it reads back as the
// same string, double-quoted otherwise.
func editScalar(s string, flow bool) string {
	if editPlain(s, flow, true) {
		return s
	}
	return editQuote(s)
}

// editPlain reports whether s written plain reads back as s, as a key and
// as a value, in a block or (flow) in a flow collection; strOnly also
// requires it to be read as a string rather than a number or a boolean.
func editPlain(s string, flow, strOnly bool) bool {
	if s == "" || strings.TrimSpace(s) != s || strings.ContainsAny(s, "\r\n\t") {
		return false
	}
	read := func(src string, pick func(*yaml.Node) *yaml.Node) bool {
		var doc yaml.Node
		if yaml.Unmarshal([]byte(src), &doc) != nil || len(doc.Content) != 1 {
			return false
		}
		m := doc.Content[0]
		if m.Kind != yaml.MappingNode || len(m.Content) != 2 {
			return false
		}
		n := pick(m)
		if n == nil || n.Kind != yaml.ScalarNode || n.Style != 0 || n.Value != s {
			return false
		}
		return !strOnly || n.Tag == "!!str"
	}
	value := func(m *yaml.Node) *yaml.Node {
		v := m.Content[1]
		if flow {
			if v.Kind != yaml.SequenceNode || len(v.Content) != 1 {
				return nil
			}
			v = v.Content[0]
		}
		return v
	}
	key := func(m *yaml.Node) *yaml.Node { return m.Content[0] }
	src := "k: " + s
	if flow {
		src = "k: [" + s + "]"
	}
	return read(src, value) && read(s+": v", key)
}

func editQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
