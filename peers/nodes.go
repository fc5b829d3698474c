package peers

import (
	"fmt"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// Erlang-aware rules: `nodes: [metrics, "web*"]` on an interconnect rule
// limits what its Erlang ports reach to the named nodes of the target host.
// A node is named by the part of its name before the @ (`metrics` for
// metrics@127.77.1.1), the name epmd knows. The overlay enforces it where it
// learns names: a PORT_PLEASE2 for another name is refused, a NAMES reply
// lists only allowed names, and a connection to a distribution port that
// epmd registered to another name is refused.

// CheckNodePattern reports whether s may appear in a rule's `nodes:` list:
// the characters of an Erlang node name (letters, digits, '_', '-', '.'),
// and the wildcards '*' and '?'.
func CheckNodePattern(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty node name")
	case strings.Contains(s, "@"):
		host, _, _ := strings.Cut(s, "@")
		return fmt.Errorf("%q names a host; write the node name only (%s): the host is the rule's target", s, host)
	case len(s) > 255:
		return fmt.Errorf("%q is longer than 255 characters", s)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*' || c == '?') {
			return fmt.Errorf("%q contains %q; node names use letters, digits, '_', '-' and '.', patterns also '*' and '?'", s, c)
		}
	}
	return nil
}

// AllowsNode reports whether r lets its source reach the Erlang node name
// (the part before @) on its target: always when the rule has no `nodes:`.
// Names are case-sensitive, as Erlang atoms are.
func (r *Rule) AllowsNode(name string) bool {
	if len(r.Nodes) == 0 {
		return true
	}
	for _, pat := range r.Nodes {
		if ok, _ := path.Match(pat, name); ok {
			return true
		}
	}
	return false
}

// DecideNode is Decide for an Erlang port (4369, or a distribution port)
// when the node asked for is known: a PORT_PLEASE2 for node, a NAMES line,
// or a connection to the port epmd registered to node. The first rule in
// file order that allows the port and names the node decides. When rules
// allow the port but none names the node, the decision is a deny with
// ReasonNode and the first of those rules. An empty node is Decide with
// erlang set: the name is not known yet.
func (f *File) DecideNode(from, to *Peer, port uint16, node string) Decision {
	d := f.Decide(from, to, port, true)
	f.judgeNode(&d, node)
	return d
}

// judgeNode narrows d, a decision on an Erlang port, to node.
func (f *File) judgeNode(d *Decision, node string) {
	d.Node = node
	if node != "" && d.Allow && d.Reason == ReasonRule && !d.Rule.AllowsNode(node) {
		f.nodeLeftOut(d)
	}
}

// nodeLeftOut settles d, whose first rule allowing the port leaves the
// node out: a later one may name it. Rules with nodes are few; a scan is
// fine.
func (f *File) nodeLeftOut(d *Decision) {
	portRule := d.Rule
	for _, r := range f.Rules[portRule.Index+1:] {
		if f.ruleCovers(r, d.From, d.To) && r.Ports.Contains(d.Port, true) && r.AllowsNode(d.Node) {
			d.Rule = r
			return
		}
	}
	d.Allow, d.Reason, d.Rule = false, ReasonNode, portRule
}

// ruleCovers reports whether r lets from open connections to to (ports
// aside).
func (f *File) ruleCovers(r *Rule, from, to *Peer) bool {
	match := func(sel int32, p *Peer) bool {
		if sel < f.policy.nNets {
			return p.Network != nil && int(sel) == p.Network.ID
		}
		return int(sel-f.policy.nNets) == p.ID
	}
	if match(r.src, from) && match(r.dst, to) {
		return true
	}
	return r.Both && match(r.dst, from) && match(r.src, to)
}

// parseNodes parses a rule's `nodes:` list. It needs the rule's ports to
// include Erlang's: nodes limit the Erlang part of a rule and nothing else.
func (p *parser) parseNodes(n *yaml.Node, path string, ports Ports) ([]string, bool) {
	items, ok := p.list(n, path)
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		p.errorf(lineOf(n), path, "empty list allows no node; leave nodes out to allow every node")
		return nil, false
	}
	good := true
	var out []string
	for i, it := range items {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		s, ok := p.str(it, ipath)
		if !ok {
			good = false
			continue
		}
		s = strings.TrimSpace(s)
		if err := CheckNodePattern(s); err != nil {
			p.errorf(it.Line, ipath, "%v", err)
			good = false
			continue
		}
		out = append(out, s)
	}
	if good && !ports.All && !ports.Erlang {
		p.errorf(lineOf(n), path, "the rule's ports do not include erlang, so nodes would limit nothing; add erlang to ports")
		good = false
	}
	return out, good
}
