package overlay

import (
	"fmt"
	"testing"

	"github.com/nodewire/nodewire/peers"
)

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
