package overlay

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nodewire/nodewire/peers"
)

type warnings []string

func (w *warnings) Warn(msg string, args ...any) {
	*w = append(*w, fmt.Sprint(append([]any{msg}, args...)...))
}

func TestWarnNodesInTUN(t *testing.T) {
	f, err := peers.Load("../peers/testdata/valid/nodes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		self string
		want []string // rule lines warned about
	}{
		{"pay-1", []string{"nodes.yaml:11", "nodes.yaml:15"}}, // target of both rules
		{"bill-1", []string{"nodes.yaml:15"}},                 // between: either side is a target
		{"mon-1", nil},                                        // only ever the source
	} {
		var w warnings
		warnNodesInTUN(&w, f, f.Peer(tc.self))
		if len(w) != len(tc.want) {
			t.Errorf("%s: warnings %q, want rules %v", tc.self, w, tc.want)
			continue
		}
		for i, line := range tc.want {
			if !strings.Contains(w[i], line) {
				t.Errorf("%s: warning %q does not name %s", tc.self, w[i], line)
			}
		}
	}
}

// A TUN-mode daemon has no stack to ping from: it points at the system's
// ping, with the peer's address.
func TestPingInTUNMode(t *testing.T) {
	f, err := peers.Load("../peers/testdata/valid/nodes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	self := f.Peers[0]
	other := f.Peers[1]
	d := &Daemon{cfg: Config{PeerFile: "nodes.yaml"}, file: f, self: self, plane: &tunPlane{}}
	_, err = d.Ping(t.Context(), other.Name, 1, 0)
	want := fmt.Sprintf("this daemon runs in TUN mode: ping %s (%s) with the system ping", other.Address, other.Name)
	if err == nil || err.Error() != want {
		t.Errorf("ping from a TUN-mode daemon: %v, want %q", err, want)
	}
}
