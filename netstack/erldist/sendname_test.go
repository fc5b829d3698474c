package erldist

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/nodewire/nodewire/peers"
)

var pay1 = &peers.Peer{Name: "pay-1", Face: netip.MustParseAddr("127.77.1.1"), Address: netip.MustParseAddr("10.77.1.1")}

func TestNameIsPeers(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"app@127.77.1.1", true},
		{"app@10.77.1.1", true}, // TUN mode: nodes named by the overlay address
		{"app@pay-1", true},
		{"app@pay-1.nodewire", true},
		{"127.77.1.1", true}, // dynamic name
		{"app@127.77.1.2", false},
		{"app@10.77.1.2", false},
		{"app@127.77.1.10", false},
		{"app@10.77.1.10", false},
		{"app@pay-10", false},
		{"app@pay-1x.nodewire", false},
		{"app@pay-1.", false},
		{"app@", false},
		{"app@mon-1@127.77.1.1", true}, // host part after the last '@'
		{"pay-1@127.77.2.1", false},
	} {
		if got := NameIsPeers([]byte(tc.name), pay1); got != tc.want {
			t.Errorf("NameIsPeers(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSplitSendName(t *testing.T) {
	msg := AppendSendName(nil, "app@10.77.1.1")
	for _, tc := range []struct {
		name string
		in   []byte
		want string
		n    int
		err  error
	}{
		{"whole message", msg, "app@10.77.1.1", len(msg), nil},
		{"bytes after it", append(append([]byte{}, msg...), 'x'), "app@10.77.1.1", len(msg), nil},
		{"cut", msg[:len(msg)-1], "", 0, ErrSendNameShort},
		{"length only", msg[:2], "", 0, ErrSendNameShort},
		{"one byte", msg[:1], "", 0, ErrSendNameShort},
		{"too large", []byte{0xff, 0xff, 'N'}, "", 0, ErrSendNameTooLarge},
		{"TLS", []byte{0x16, 0x03, 0x01, 0x00, 0x05}, "", 0, ErrSendNameTLS},
		{"not send_name", []byte{0, 3, 's', 'o', 'k'}, "", 5, ErrSendNameTag},
	} {
		name, n, err := SplitSendName(tc.in)
		if !errors.Is(err, tc.err) || string(name) != tc.want || err == nil && n != tc.n {
			t.Errorf("%s: SplitSendName = %q, %d, %v; want %q, %d, %v", tc.name, name, n, err, tc.want, tc.n, tc.err)
		}
	}
}

func TestSendNameZeroAlloc(t *testing.T) {
	msg := AppendSendName(nil, "app@10.77.1.1")
	allocs := testing.AllocsPerRun(100, func() {
		name, _, err := SplitSendName(msg)
		if err != nil || !NameIsPeers(name, pay1) {
			t.Fatal("parse failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per parse and check, want 0", allocs)
	}
}
