package peers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// This file walks yaml.Node trees: the nodes carry line numbers, which plain
// Unmarshal throws away, and every error must name its line.

// parser collects every error of one file instead of stopping at the first,
// so that one reload shows the operator everything to fix.
type parser struct {
	name   string
	errs   Errors
	noFast bool // tests: yaml.v3 alone, to compare fastDecode with
}

func (p *parser) errorf(line int, field, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	p.errs = append(p.errs, &Error{File: p.name, Line: line, Field: oneLine(field), Msg: oneLine(msg)})
}

// oneLine escapes control characters that input may smuggle into a message,
// so that every Error stays one line of a log.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decode parses data into the root node of its single document, or reports
// why it can not.
func (p *parser) decode(data []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 has panicked on malformed input before; input must never
		// crash the daemon.
		if r := recover(); r != nil {
			p.errorf(0, "", "YAML parser failed: %v", r)
			root = nil
		}
	}()
	if !p.noFast {
		if root, ok := fastDecode(data); ok {
			return root
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(0, "", "the file is empty")
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			p.yamlError(err)
		} else {
			p.errorf(extra.Line, "", "a second YAML document; a peer file holds exactly one")
		}
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.errorf(0, "", "the file is empty")
		return nil
	}
	root = deref(doc.Content[0])
	if isNull(root) {
		p.errorf(0, "", "the file is empty")
		return nil
	}
	return root
}

// yamlError turns "yaml: line 3: did not find expected key" into an Error
// at line 3.
func (p *parser) yamlError(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if line, err := strconv.Atoi(m[1]); err == nil {
			p.errorf(line, "", "%s", m[2])
			return
		}
	}
	if len(msg) > 6 && msg[:6] == "yaml: " {
		msg = msg[6:]
	}
	p.errorf(0, "", "%s", msg)
}

// deref follows aliases (*name) to the anchored node. The bound only guards
// against cycles; yaml.v3 refuses those already.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 32; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	n = deref(n)
	switch {
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "an alias"
}

// join extends a dotted field path; odd keys are quoted so that the path
// stays readable.
func join(path, key string) string {
	if key == "" || strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r == '"' || r > '~' }) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// entry is one key: value pair of a mapping.
type entry struct {
	name     string
	key, val *yaml.Node
}

// entries returns the pairs of mapping n in file order, reporting and
// skipping duplicate and non-scalar keys. A null n is an empty mapping.
func (p *parser) entries(n *yaml.Node, path string) []entry {
	line := lineOf(n)
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(line, path, "expected a mapping, got %s", describe(n))
		return nil
	}
	out := make([]entry, 0, len(n.Content)/2)
	// A peer's mapping has a handful of keys: a scan of out finds a
	// duplicate sooner than a map would be made.
	var seen map[string]int
	if len(n.Content) > 32 {
		seen = make(map[string]int, len(n.Content)/2)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			p.errorf(n.Content[i].Line, path, "a key must be a name, got %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			p.errorf(k.Line, join(path, k.Value), "merge keys are not supported; write the fields out")
			continue
		}
		if first, dup := firstLine(seen, out, k.Value); dup {
			p.errorf(k.Line, join(path, k.Value), "defined twice (first at line %d)", first)
			continue
		}
		if seen != nil {
			seen[k.Value] = k.Line
		}
		out = append(out, entry{k.Value, k, v})
	}
	return out
}

// firstLine is the line of key name among the entries so far: seen if
// there is one, else a scan of out.
func firstLine(seen map[string]int, out []entry, name string) (int, bool) {
	if seen != nil {
		line, ok := seen[name]
		return line, ok
	}
	for _, e := range out {
		if e.name == name {
			return e.key.Line, true
		}
	}
	return 0, false
}

// fields returns the values of the known fields of mapping n, nil where
// absent, and their key nodes. Unknown fields are reported: a typo such as
// `adress:` must not silently drop a setting.
func (p *parser) fields(n *yaml.Node, path string, known ...string) (keys, vals []*yaml.Node, ok bool) {
	keys = make([]*yaml.Node, len(known))
	vals = make([]*yaml.Node, len(known))
	line := lineOf(n)
	if n = deref(n); !isNull(n) && n.Kind != yaml.MappingNode {
		p.errorf(line, path, "expected a mapping with %s, got %s", listWords(known, "and"), describe(n))
		return keys, vals, false
	}
next:
	for _, e := range p.entries(n, path) {
		for i, name := range known {
			if e.name == name {
				keys[i], vals[i] = e.key, e.val
				continue next
			}
		}
		p.errorf(e.key.Line, join(path, e.name), "unknown field (expected %s)", listWords(known, "or"))
	}
	return keys, vals, true
}

// list returns the items of sequence n; a null n is an empty list.
func (p *parser) list(n *yaml.Node, path string) ([]*yaml.Node, bool) {
	line := lineOf(n)
	n = deref(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(line, path, "expected a list, got %s", describe(n))
		return nil, false
	}
	return n.Content, true
}

// str returns the text of scalar n. Any scalar is accepted (a name may look
// like a number); what it must look like is checked by the caller.
func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	line := lineOf(n)
	n = deref(n)
	switch {
	case isNull(n):
		p.errorf(line, path, "has no value")
		return "", false
	case n.Kind != yaml.ScalarNode:
		p.errorf(line, path, "expected a single value, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

// lineOf is where n is written: for an alias, where the alias is, not its
// anchor.
func lineOf(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// listWords renders ["a","b","c"] as "a, b or c".
func listWords(ws []string, conj string) string {
	var b bytes.Buffer
	for i, w := range ws {
		switch {
		case i == 0:
		case i == len(ws)-1:
			b.WriteString(" " + conj + " ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(w)
	}
	return b.String()
}
