package peers

import (
	"sort"
	"strconv"
	"strings"
)

// Error is one problem found in a peer file, printed as
// "peers.yaml:14: peers.pay-2.address: 10.77.2.9 is outside network payments (10.77.1.0/24)"
// so that editors and operators can jump to the line.
type Error struct {
	File  string
	Line  int    // 0 when unknown
	Field string // dotted path, e.g. peers.pay-2.address; empty for file-level problems
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in line order. Its Error()
// joins them with newlines, so one reload shows the operator everything to
// fix at once.
type Errors []*Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// sort orders errors by line, keeping discovery order within a line.
func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
}
