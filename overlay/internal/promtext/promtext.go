// Package promtext writes the Prometheus text exposition format (version
// 0.0.4): HELP and TYPE lines, then samples with escaped label values. It
// is all overlayd needs to be scraped, without a client library and its
// dependencies.
package promtext

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"
)

// ContentType is the Content-Type of the format, for HTTP responses.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Kind is a metric type.
type Kind string

const (
	Counter Kind = "counter"
	Gauge   Kind = "gauge"
)

// Writer writes one exposition. Families must be written whole, one after
// another: Family, then its samples. The first write error sticks and is
// returned by Flush; later writes do nothing.
type Writer struct {
	w   *bufio.Writer
	err error
	cur string // the family being written
}

// NewWriter writes to w; call Flush at the end.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriter(w)} }

// Family starts a metric family: its HELP and TYPE lines. name must be a
// valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*); help is escaped.
func (w *Writer) Family(name string, kind Kind, help string) {
	if !validName(name, true) {
		panic("promtext: invalid metric name " + strconv.Quote(name))
	}
	w.cur = name
	w.str("# HELP " + name + " " + escapeHelp(help) + "\n# TYPE " + name + " " + string(kind) + "\n")
}

// Sample writes one sample of the current family. labels alternate names
// and values: "peer", "pay-1", "dir", "in". Label values are escaped;
// names must be valid.
func (w *Writer) Sample(value float64, labels ...string) {
	if w.cur == "" {
		panic("promtext: Sample before Family")
	}
	if len(labels)%2 != 0 {
		panic("promtext: odd number of label strings")
	}
	var b strings.Builder
	b.WriteString(w.cur)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i < len(labels); i += 2 {
			if !validName(labels[i], false) {
				panic("promtext: invalid label name " + strconv.Quote(labels[i]))
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i])
			b.WriteString(`="`)
			b.WriteString(escapeValue(labels[i+1]))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatValue(value))
	b.WriteByte('\n')
	w.str(b.String())
}

// Flush writes out what is buffered and returns the first error.
func (w *Writer) Flush() error {
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return w.err
}

func (w *Writer) str(s string) {
	if w.err == nil {
		_, w.err = w.w.WriteString(s)
	}
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case v == math.Trunc(v) && math.Abs(v) < 1<<53:
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// escapeHelp escapes a HELP text: backslash and newline.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// escapeValue escapes a label value: backslash, double quote and newline.
func escapeValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// validName checks a metric name (colons allowed) or a label name.
func validName(s string, metric bool) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (i > 0 && c >= '0' && c <= '9') || (metric && c == ':')
		if !ok {
			return false
		}
	}
	return metric || !strings.HasPrefix(s, "__")
}
