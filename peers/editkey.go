package peers

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// SetPublicKey returns data with peer name's public_key replaced by key,
// every other byte unchanged (comments, layout, quoting). It refuses what it
// cannot splice safely: a key written as an alias or over several lines.
func SetPublicKey(data []byte, name string, key Key) ([]byte, error) {
	d, err := newEditDoc(data)
	if err != nil {
		return nil, err
	}
	peersVal := mapValue(d.root, "peers")
	if peersVal == nil {
		return nil, fmt.Errorf("no peers section")
	}
	peerVal := mapValue(peersVal, name)
	if peerVal == nil {
		return nil, fmt.Errorf("no peer %s", name)
	}
	v := mapValue(peerVal, "public_key")
	if v == nil {
		return nil, fmt.Errorf("peer %s has no public_key", name)
	}
	if v.Kind != yaml.ScalarNode || v.Line < 1 || v.Line > len(d.lines) {
		return nil, fmt.Errorf("peers.%s.public_key is not a plain value; edit it by hand", name)
	}
	raw := v.Value
	switch v.Style {
	case 0:
	case yaml.SingleQuotedStyle:
		raw = "'" + raw + "'"
	case yaml.DoubleQuotedStyle:
		raw = `"` + raw + `"`
	default:
		return nil, fmt.Errorf("peers.%s.public_key is not a plain value; edit it by hand", name)
	}
	line := d.lines[v.Line-1]
	at := editByteCol(line, v.Column)
	if !strings.HasPrefix(line[at:], raw) {
		return nil, fmt.Errorf("peers.%s.public_key spans lines; edit it by hand", name)
	}
	newRaw := key.String()
	if v.Style == yaml.SingleQuotedStyle {
		newRaw = "'" + newRaw + "'"
	} else if v.Style == yaml.DoubleQuotedStyle {
		newRaw = `"` + newRaw + `"`
	}
	d.lines[v.Line-1] = line[:at] + newRaw + line[at+len(raw):]
	return d.result()
}

// mapValue returns the value of key in mapping n (exact match), or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
