package tcpbind

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/conn"
)

// TCPPrefix marks a TCP endpoint in UAPI: "tcp://host:port" alone pins a
// peer to TCP; "ip:port,tcp://host:port" is UDP with a TCP fallback.
const TCPPrefix = "tcp://"

var (
	_ conn.Endpoint = (*Endpoint)(nil)
	_ conn.Endpoint = (*streamEndpoint)(nil)
)

// Endpoint is a peer configured with a TCP endpoint: the device keeps it as
// the peer's endpoint, and the Bind decides per send whether the datagrams go
// over UDP or over the peer's stream. Datagrams from the peer's UDP address
// and from the stream we dialed arrive with this Endpoint, so WireGuard's
// roaming keeps it.
type Endpoint struct {
	udp     conn.Endpoint  // nil when pinned to TCP
	udpAddr netip.AddrPort // udp's address
	tcpAddr string         // host:port to dial
	tcpIP   netip.Addr     // tcpAddr's IP when it is a literal

	lastUDPRx atomic.Int64 // monotonic ns of the last datagram from udpAddr; 0: never
	udpTry    atomic.Int64 // when sending over UDP began without hearing back; 0: not trying
	// quietFrom and quietSends: the first data message sent over UDP since
	// the peer's last datagram (0: none) and how many went since.
	quietFrom  atomic.Int64
	quietSends atomic.Int32
	lastProbe  atomic.Int64 // when a datagram last went over UDP while on TCP
	onTCP      atomic.Bool  // the last send went over TCP

	st            atomic.Pointer[stream] // the stream we dialed, or nil
	dialing       atomic.Bool
	fallbackArmed atomic.Bool  // a fallbackLater is pending
	nextDial      atomic.Int64 // no dial before this (backoff after a failure)
	heldMu        sync.Mutex
	heldInit      []byte        // the last handshake initiation sent while the stream was being dialed
	dialFails     atomic.Uint32 // dials failed in a row, to log the first only
}

// retire closes the stream of an Endpoint that a new one for the same
// address replaced (a reload changed the peer's endpoints), so its messages
// stop arriving as the old Endpoint.
func (e *Endpoint) retire() {
	if e == nil {
		return
	}
	if st := e.st.Swap(nil); st != nil {
		st.close()
	}
}

func (e *Endpoint) pinned() bool { return e.udp == nil }

// Transport is "tcp" when the peer's datagrams currently go over its stream,
// else "udp".
func (e *Endpoint) Transport() string {
	if e.pinned() || e.onTCP.Load() {
		return "tcp"
	}
	return "udp"
}

func (e *Endpoint) ClearSrc() {
	if e.udp != nil {
		e.udp.ClearSrc()
	}
}

func (e *Endpoint) SrcToString() string {
	if e.udp != nil {
		return e.udp.SrcToString()
	}
	return ""
}

// DstToString is the address in use: the UDP one, or while on TCP the
// tcp_endpoint's (an IP literal, else the stream's remote address, else "").
// It stays "ip:port" because `wg show` parses it (and crashes on anything
// else); Bind.TCPEndpoints tells which of these strings are TCP.
func (e *Endpoint) DstToString() string {
	if e.Transport() == "tcp" {
		return e.tcpDst()
	}
	return e.udp.DstToString()
}

func (e *Endpoint) tcpDst() string {
	if e.tcpIP.IsValid() {
		if ap, err := netip.ParseAddrPort(e.tcpAddr); err == nil {
			return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
		}
	}
	if st := e.st.Load(); st != nil {
		return st.remote.String()
	}
	return ""
}

func (e *Endpoint) DstToBytes() []byte {
	if e.udp != nil {
		return e.udp.DstToBytes()
	}
	return []byte(e.tcpAddr)
}

func (e *Endpoint) DstIP() netip.Addr {
	if e.udp != nil {
		return e.udp.DstIP()
	}
	return e.tcpIP
}

func (e *Endpoint) SrcIP() netip.Addr {
	if e.udp != nil {
		return e.udp.SrcIP()
	}
	return netip.Addr{}
}

// streamEndpoint is the source of datagrams that arrived on a stream a peer
// dialed to us; replies to it go back on that stream.
type streamEndpoint struct {
	st *stream
}

func (e *streamEndpoint) ClearSrc()           {}
func (e *streamEndpoint) SrcToString() string { return "" }
func (e *streamEndpoint) DstToString() string { return e.st.remote.String() }
func (e *streamEndpoint) DstIP() netip.Addr   { return e.st.remote.Addr() }
func (e *streamEndpoint) SrcIP() netip.Addr   { return netip.Addr{} }

func (e *streamEndpoint) DstToBytes() []byte {
	b, _ := e.st.remote.MarshalBinary()
	return b
}
