package netstack

// The distribution handshake's first message, send_name, names the dialling
// node. Erlang checks it only against the cookie; the overlay also knows
// which peer the connection really comes from (cryptokey routing), so it
// refuses a name whose host part is not that peer's face or name: a peer
// that knows the cookie still cannot pose as another peer's node.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"time"

	"github.com/nodewire/nodewire/peers"
)

// MaxSendName caps the send_name message read from a peer. A node name is
// at most 255 characters (1020 bytes of UTF-8); the rest is fixed fields.
const MaxSendName = 1100

// sendNameTimeout is how long an inbound distribution connection may take
// to send its name; a real node sends it at once.
const sendNameTimeout = 10 * time.Second

// reasonNodeName labels refused handshakes (metrics, refusals).
const reasonNodeName = "node_name"

// Errors of ParseSendName and ReadSendName. Fixed values: the parser does
// not allocate.
var (
	ErrSendNameShort    = errors.New("send_name: truncated")
	ErrSendNameTooLarge = errors.New("send_name: too large")
	ErrSendNameTag      = errors.New("send_name: not a send_name message")
	ErrSendNameEmpty    = errors.New("send_name: empty node name")
	// ErrSendNameTLS says the stream starts with a TLS record
	// (inet_tls_dist): there is no clear-text name to check; the node's
	// own TLS handshake authenticates the peer.
	ErrSendNameTLS = errors.New("send_name: TLS distribution, no clear-text name")
)

// ParseSendName returns the node name in body, the send_name message after
// its 2-byte length. Both formats are understood:
//
//	old (OTP < 23): 'n', Version:16, Flags:32, Name (to the end)
//	new (OTP 23+):  'N', Flags:64, Creation:32, Nlen:16, Name
//
// name aliases body.
func ParseSendName(body []byte) (name []byte, err error) {
	if len(body) == 0 {
		return nil, ErrSendNameShort
	}
	switch body[0] {
	case 'n':
		if len(body) < 7 {
			return nil, ErrSendNameShort
		}
		name = body[7:]
	case 'N':
		if len(body) < 15 {
			return nil, ErrSendNameShort
		}
		n := int(binary.BigEndian.Uint16(body[13:15]))
		if len(body) < 15+n {
			return nil, ErrSendNameShort
		}
		name = body[15 : 15+n]
	default:
		return nil, ErrSendNameTag
	}
	if len(name) == 0 {
		return nil, ErrSendNameEmpty
	}
	return name, nil
}

// ReadSendName reads the first message of a distribution connection into
// buf (at least MaxSendName+2 bytes) and returns every byte read (to pass
// on to the node) and the node name in it. A stream that starts like a TLS
// record returns its first two bytes and ErrSendNameTLS.
func ReadSendName(r io.Reader, buf []byte) (frame, name []byte, err error) {
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return nil, nil, shortIfEOF(err, ErrSendNameShort)
	}
	if buf[0] == 0x16 && buf[1] == 0x03 { // TLS handshake record, version 3.x
		return buf[:2], nil, ErrSendNameTLS
	}
	n := int(binary.BigEndian.Uint16(buf[:2]))
	if n > MaxSendName || 2+n > len(buf) {
		return buf[:2], nil, ErrSendNameTooLarge
	}
	if _, err := io.ReadFull(r, buf[2:2+n]); err != nil {
		return nil, nil, shortIfEOF(err, ErrSendNameShort)
	}
	name, err = ParseSendName(buf[2 : 2+n])
	return buf[:2+n], name, err
}

// NodeHost is the host part of a node name: after the last '@', or the
// whole name when there is none (a dynamic name sends only its host).
func NodeHost(name []byte) []byte {
	if i := bytes.LastIndexByte(name, '@'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// NameIsPeers reports whether node name belongs to peer p: its host part is
// p's face (127.77.1.1), p's name (pay-1) or a domain name under it
// (pay-1.nodewire, as an inetrc file may map).
func NameIsPeers(name []byte, p *peers.Peer) bool {
	host := NodeHost(name)
	if len(host) == 0 {
		return false
	}
	if p.Face.IsValid() {
		var b [len("255.255.255.255")]byte
		if bytes.Equal(host, p.Face.AppendTo(b[:0])) {
			return true
		}
	}
	if string(host) == p.Name {
		return true
	}
	return len(host) > len(p.Name)+1 && host[len(p.Name)] == '.' && string(host[:len(p.Name)]) == p.Name
}
