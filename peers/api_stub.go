package peers

// STUB: signatures fixed; the peers helper replaces this file with the real
// implementation (split across load.go, validate.go, policy.go, key.go, ...).

import (
	"net/netip"
)

// Error is one problem found in a peer file, printed as
// "peers.yaml:14: peers.pay-2.address: 10.77.2.9 is outside network payments (10.77.1.0/24)".
type Error struct {
	File  string
	Line  int
	Field string // dotted path, e.g. peers.pay-2.address
	Msg   string
}

func (e *Error) Error() string { panic("stub") }

// Errors is every problem found in one file, in line order. Its Error()
// joins them with newlines.
type Errors []*Error

func (es Errors) Error() string { panic("stub") }

// Parse parses and validates a peer file, runs its tests, and reports every
// error found (as Errors). name is used in messages.
func Parse(name string, data []byte) (*File, error) { panic("stub") }

// Load reads and parses the file at path.
func Load(path string) (*File, error) { panic("stub") }

// Peer returns the peer called name, or nil.
func (f *File) Peer(name string) *Peer { panic("stub") }

// PeerByAddr returns the peer whose overlay address is a, or nil.
func (f *File) PeerByAddr(a netip.Addr) *Peer { panic("stub") }

// PeerByFace returns the peer whose face is a, or nil.
func (f *File) PeerByFace(a netip.Addr) *Peer { panic("stub") }

// Network returns the network called name, or nil.
func (f *File) Network(name string) *Network { panic("stub") }

// Decide is the policy: may from open a TCP connection to port of to?
// erlang says the caller knows port to be a distribution port registered in
// to's epmd (EPMDPort always counts as erlang). Pure, allocation-free.
func (f *File) Decide(from, to *Peer, port uint16, erlang bool) Decision { panic("stub") }

// String renders a decision for logs and `explain`: "allow same network payments",
// "allow rule peers.yaml:12 (monitoring -> payments ports [erlang])", "deny default".
func (d Decision) String() string { panic("stub") }

// FaceOf maps an overlay address to its face: faces + (addr - overlay).
func FaceOf(overlay, faces netip.Prefix, addr netip.Addr) netip.Addr { panic("stub") }

// ParseKey decodes a base64 key as `wg` prints it.
func ParseKey(s string) (Key, error) { panic("stub") }

// String is the base64 form; Hex the UAPI form.
func (k Key) String() string { panic("stub") }
func (k Key) Hex() string    { panic("stub") }

// Contains reports whether p allows port, given whether it is an Erlang port.
func (p Ports) Contains(port uint16, erlang bool) bool { panic("stub") }

// String renders ports as in the file: "[erlang, 9100-9199]" or "all".
func (p Ports) String() string { panic("stub") }
type policy struct{}
