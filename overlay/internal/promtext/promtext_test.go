package promtext

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestWriter(t *testing.T) {
	var b strings.Builder
	w := NewWriter(&b)
	w.Family("nodewire_peer_rx_bytes_total", Counter, "Bytes received.\nFrom WireGuard \\ UAPI.")
	w.Sample(1234, "peer", "pay-1")
	w.Sample(5, "peer", `we"ird\name`+"\n")
	w.Family("nodewire_up", Gauge, "1 while running.")
	w.Sample(1)
	w.Family("nodewire_ratio", Gauge, "A float.")
	w.Sample(0.25, "a", "x", "b", "y")
	w.Sample(math.Inf(1))
	w.Sample(math.NaN())
	w.Sample(1 << 60)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `# HELP nodewire_peer_rx_bytes_total Bytes received.\nFrom WireGuard \\ UAPI.
# TYPE nodewire_peer_rx_bytes_total counter
nodewire_peer_rx_bytes_total{peer="pay-1"} 1234
nodewire_peer_rx_bytes_total{peer="we\"ird\\name\n"} 5
# HELP nodewire_up 1 while running.
# TYPE nodewire_up gauge
nodewire_up 1
# HELP nodewire_ratio A float.
# TYPE nodewire_ratio gauge
nodewire_ratio{a="x",b="y"} 0.25
nodewire_ratio +Inf
nodewire_ratio NaN
nodewire_ratio 1.152921504606847e+18
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestInvalidNamesPanic(t *testing.T) {
	for name, f := range map[string]func(w *Writer){
		"metric name":   func(w *Writer) { w.Family("1bad", Gauge, "") },
		"label name":    func(w *Writer) { w.Family("ok", Gauge, ""); w.Sample(1, "bad-label", "v") },
		"reserved":      func(w *Writer) { w.Family("ok", Gauge, ""); w.Sample(1, "__name", "v") },
		"odd labels":    func(w *Writer) { w.Family("ok", Gauge, ""); w.Sample(1, oddLabels()...) },
		"sample first":  func(w *Writer) { w.Sample(1) },
		"metric hyphen": func(w *Writer) { w.Family("a-b", Gauge, "") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f(NewWriter(&strings.Builder{}))
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestErrorSticks(t *testing.T) {
	w := NewWriter(failWriter{})
	w.Family("ok", Gauge, "h")
	for i := 0; i < 10000; i++ {
		w.Sample(float64(i), "i", "x")
	}
	if err := w.Flush(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Flush: %v", err)
	}
}

// oddLabels hides an odd label list from static checks.
func oddLabels() []string { return strings.Fields("peer") }
