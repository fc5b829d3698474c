package overlay

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nodewire/nodewire/overlay/control"
	"github.com/nodewire/nodewire/overlay/internal/promtext"
)

func TestSourceMetrics(t *testing.T) {
	var b bytes.Buffer
	w := promtext.NewWriter(&b)
	writeSourceMetrics(w, nil)
	writeSourceMetrics(w, &control.SourceStatus{URL: "etcd://h:2379/k", Revision: 7, Seen: 9, Refused: 2, Errors: 3})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`nodewire_peer_source_connected{url="etcd://h:2379/k"} 0`,
		`nodewire_peer_source_revision{url="etcd://h:2379/k"} 7`,
		`nodewire_peer_source_seen_revision{url="etcd://h:2379/k"} 9`,
		`nodewire_peer_source_refused_total{url="etcd://h:2379/k"} 2`,
		`nodewire_peer_source_errors_total{url="etcd://h:2379/k"} 3`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("no line %q in:\n%s", want, b.String())
		}
	}
}
