// Package erldist reads Erlang distribution's wire formats, for both data
// planes (the userspace stack, which relays streams, and TUN mode's packet
// filter, which sees segments): EPMD requests and replies (epmd.go), and
// the distribution handshake's first message, send_name, which names the
// dialling node. Erlang checks send_name only against the cookie; the
// overlay also knows which peer a connection really comes from (cryptokey
// routing), so both planes refuse a name whose host part is not that
// peer's: a peer that knows the cookie still cannot pose as another peer's
// node. Pure functions over bytes (or over a reader handed in), without
// allocation, so they can be tested and fuzzed on their own.
package erldist

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/nodewire/nodewire/peers"
)

// MaxSendName caps the send_name message read from a peer. A node name is
// at most 255 characters (1020 bytes of UTF-8); the rest is fixed fields.
const MaxSendName = 1100

// Errors of the parsers. Fixed values: the parsers do not allocate.
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

// IsTLS reports whether a stream starting with b is TLS (a handshake
// record, version 3.x); b holds at least its first two bytes.
func IsTLS(b []byte) bool { return len(b) >= 2 && b[0] == 0x16 && b[1] == 0x03 }

// SplitSendName reads the send_name message at the start of b (its 2-byte
// length, then the body) and returns the node name in it and the message's
// length. A stream that starts with a TLS record returns ErrSendNameTLS.
// name aliases b.
func SplitSendName(b []byte) (name []byte, n int, err error) {
	if len(b) < 2 {
		return nil, 0, ErrSendNameShort
	}
	if IsTLS(b) {
		return nil, 0, ErrSendNameTLS
	}
	body := int(binary.BigEndian.Uint16(b))
	if body > MaxSendName {
		return nil, 0, ErrSendNameTooLarge
	}
	if len(b) < 2+body {
		return nil, 0, ErrSendNameShort
	}
	name, err = ParseSendName(b[2 : 2+body])
	return name, 2 + body, err
}

// AppendSendName appends to dst the send_name message, with its 2-byte
// length, that an OTP 23+ node dialling as node sends (tag 'N', the
// distribution flags of OTP 25's default handshake, creation 0): for tests
// and tools that speak for a node. It is the inverse of SplitSendName.
func AppendSendName(dst []byte, node string) []byte {
	body := 1 + 8 + 4 + 2 + len(node)
	dst = binary.BigEndian.AppendUint16(dst, uint16(body))
	dst = append(dst, 'N')
	dst = binary.BigEndian.AppendUint64(dst, otp25Flags)
	dst = binary.BigEndian.AppendUint32(dst, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(node)))
	return append(dst, node...)
}

// otp25Flags are the distribution flags an OTP 25 node offers by default.
const otp25Flags = 0x0d07df7fbd

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

// NodeHost is the host part of a node name: after the last '@', or the
// whole name when there is none (a dynamic name sends only its host).
func NodeHost(name []byte) []byte {
	if i := bytes.LastIndexByte(name, '@'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// NameIsPeers reports whether node name belongs to peer p: its host part is
// p's face (127.77.1.1, userspace mode), p's overlay address (10.77.1.1,
// TUN mode and standard WireGuard peers), p's name (pay-1) or a domain
// name under it (pay-1.nodewire, as an inetrc file may map).
func NameIsPeers(name []byte, p *peers.Peer) bool {
	host := NodeHost(name)
	if len(host) == 0 {
		return false
	}
	var b [len("255.255.255.255")]byte
	if p.Face.IsValid() && bytes.Equal(host, p.Face.AppendTo(b[:0])) {
		return true
	}
	if p.Address.IsValid() && bytes.Equal(host, p.Address.AppendTo(b[:0])) {
		return true
	}
	if string(host) == p.Name {
		return true
	}
	return len(host) > len(p.Name)+1 && host[len(p.Name)] == '.' && string(host[:len(p.Name)]) == p.Name
}
