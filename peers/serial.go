package peers

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The serial and expiry of a peer file are what lets a host that follows
// signed files refuse an old one (a rollback, or a replay of a file whose
// expiry has passed): a signature alone says who wrote a file, not that it
// is the newest.

func (p *fileParser) parseSerial(n *yaml.Node) {
	s, ok := p.str(n, "serial")
	if !ok {
		return
	}
	v, err := parseSerial(s)
	if err != nil {
		p.errorf(n.Line, "serial", "%v", err)
		return
	}
	p.f.Serial = v
}

func parseSerial(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	if t == "" || strings.TrimLeft(t, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is too large (at most %d)", t, uint64(1<<64-1))
	}
	return v, nil
}

func (p *fileParser) parseExpires(n *yaml.Node) {
	s, ok := p.str(n, "expires")
	if !ok {
		return
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		p.errorf(n.Line, "expires", "%q is not an RFC 3339 time like 2027-01-31T00:00:00Z", s)
		return
	}
	p.f.Expires = t
}

// BumpSerial returns data with its top-level `serial:` one higher, every
// other byte unchanged, and the new serial. A file without a serial gets
// `serial: 1` on its own line just above its first top-level key (and that
// key's comment), so that it is seen first. Every edit overlayctl makes bumps the serial: a host
// that follows signed files applies only a serial higher than the one it
// runs.
func BumpSerial(data []byte) ([]byte, uint64, error) {
	d, err := newEditDoc(data)
	if err != nil {
		return nil, 0, err
	}
	v := mapValue(d.root, "serial")
	if v == nil {
		d.insert(d.topLine(), []string{strings.Repeat(" ", d.rootIndent()) + "serial: 1"})
		return d.bytes(), 1, nil
	}
	if v.Kind != yaml.ScalarNode || v.Style != 0 || v.Line < 1 || v.Line > len(d.lines) {
		return nil, 0, fmt.Errorf("line %d: serial: not a plain number; edit it by hand", v.Line)
	}
	old, err := parseSerial(v.Value)
	if err != nil {
		return nil, 0, fmt.Errorf("line %d: serial: %v", v.Line, err)
	}
	if old == 1<<64-1 {
		return nil, 0, fmt.Errorf("line %d: serial: %d cannot be increased", v.Line, old)
	}
	line := d.lines[v.Line-1]
	at := editByteCol(line, v.Column)
	if !strings.HasPrefix(line[at:], v.Value) {
		return nil, 0, fmt.Errorf("line %d: serial: spans lines; edit it by hand", v.Line)
	}
	next := old + 1
	d.lines[v.Line-1] = line[:at] + strconv.FormatUint(next, 10) + line[at+len(v.Value):]
	return d.bytes(), next, nil
}

// topLine is the index (0-based) at which a new top-level key goes to be
// seen first: just above the first top-level key and that key's head
// comment, or at the end of a file with none.
func (d *editDoc) topLine() int {
	if d.root == nil || len(d.root.Content) == 0 {
		return len(d.lines)
	}
	at := d.root.Content[0].Line - 1
	for at > 0 && d.comment(at) { // the key's head comment stays with it
		at--
	}
	return at
}

// SetExpires returns data with its top-level `expires:` set to t (RFC 3339,
// UTC), every other byte unchanged. A file without one gets it on its own
// line just below `serial:` (or above the first top-level key): an admin
// who signs with an expiry bounds how long a stolen or replayed copy of the
// file stays applicable.
func SetExpires(data []byte, t time.Time) ([]byte, error) {
	d, err := newEditDoc(data)
	if err != nil {
		return nil, err
	}
	text := t.UTC().Format(time.RFC3339)
	v := mapValue(d.root, "expires")
	if v == nil {
		at := d.topLine()
		if s := mapValue(d.root, "serial"); s != nil && s.Line >= 1 && s.Line <= len(d.lines) {
			at = s.Line
		}
		d.insert(at, []string{strings.Repeat(" ", d.rootIndent()) + "expires: " + text})
		return d.result()
	}
	if v.Kind != yaml.ScalarNode || v.Line < 1 || v.Line > len(d.lines) {
		return nil, fmt.Errorf("line %d: expires: not a plain time; edit it by hand", v.Line)
	}
	line := d.lines[v.Line-1]
	at := editByteCol(line, v.Column)
	raw := v.Value
	if v.Style == yaml.DoubleQuotedStyle || v.Style == yaml.SingleQuotedStyle {
		q := line[at : at+1]
		raw = q + v.Value + q
	} else if v.Style != 0 {
		return nil, fmt.Errorf("line %d: expires: not a plain time; edit it by hand", v.Line)
	}
	if !strings.HasPrefix(line[at:], raw) {
		return nil, fmt.Errorf("line %d: expires: spans lines; edit it by hand", v.Line)
	}
	d.lines[v.Line-1] = line[:at] + text + line[at+len(raw):]
	return d.result()
}
