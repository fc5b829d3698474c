package erldist

// The dialled node's answer to send_name: a status message and, when the
// status is ok, its challenge, which names the node. The userspace stack
// reads it to confirm that a connection dialled on a cached EPMD answer
// reached the node that was asked for (netstack/epmdcache.go).

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Errors of ReplyNode. Fixed values: it does not allocate.
var (
	// ErrReplyShort says the bytes end before the challenge does.
	ErrReplyShort = errors.New("handshake reply: incomplete")
	// ErrReplyNotOK says the reply is not an ok status and a challenge
	// (another status, TLS, anything else).
	ErrReplyNotOK = errors.New("handshake reply: not an ok status and a challenge")
)

// ReplyNode returns the node name in the challenge that follows an ok
// status at the start of b, the first bytes a dialled node sends:
//
//	status:         Len:16, 's', "ok" or "ok_simultaneous"
//	challenge, new: Len:16, 'N', Flags:64, Challenge:32, Creation:32, Nlen:16, Name (OTP 23+)
//	challenge, old: Len:16, 'n', Version:16, Flags:32, Challenge:32, Name (to the end)
//
// and the length of the two messages. name aliases b.
func ReplyNode(b []byte) (name []byte, n int, err error) {
	status, rest, err := handshakeMessage(b)
	if err != nil {
		return nil, 0, err
	}
	if len(status) == 0 || status[0] != 's' || (string(status[1:]) != "ok" && string(status[1:]) != "ok_simultaneous") {
		return nil, 0, ErrReplyNotOK
	}
	chal, _, err := handshakeMessage(rest)
	if err != nil {
		return nil, 0, err
	}
	switch {
	case len(chal) >= 19 && chal[0] == 'N':
		nlen := int(binary.BigEndian.Uint16(chal[17:19]))
		if len(chal) != 19+nlen {
			return nil, 0, ErrReplyNotOK
		}
		name = chal[19:]
	case len(chal) > 11 && chal[0] == 'n':
		name = chal[11:]
	default:
		return nil, 0, ErrReplyNotOK
	}
	if len(name) == 0 {
		return nil, 0, ErrReplyNotOK
	}
	return name, 2 + len(status) + 2 + len(chal), nil
}

// handshakeMessage splits the handshake message (2-byte length, body) at
// the start of b.
func handshakeMessage(b []byte) (body, rest []byte, err error) {
	if len(b) >= 2 && IsTLS(b) {
		return nil, nil, ErrReplyNotOK
	}
	if len(b) < 2 {
		return nil, nil, ErrReplyShort
	}
	n := int(binary.BigEndian.Uint16(b))
	if n > MaxSendName {
		return nil, nil, ErrReplyNotOK
	}
	if len(b) < 2+n {
		return nil, nil, ErrReplyShort
	}
	return b[2 : 2+n], b[2+n:], nil
}

// NodeAlive is the alive part of a node name, before the last '@' (empty
// for a name without one).
func NodeAlive(name []byte) []byte {
	i := bytes.LastIndexByte(name, '@')
	if i < 0 {
		return nil
	}
	return name[:i]
}

// AppendReply appends the ok status and a challenge (new format) naming
// node: what a node answers send_name with, for tests and tools.
func AppendReply(dst []byte, node string) []byte {
	dst = append(dst, 0, 3, 's', 'o', 'k')
	body := 1 + 8 + 4 + 4 + 2 + len(node)
	dst = binary.BigEndian.AppendUint16(dst, uint16(body))
	dst = append(dst, 'N')
	dst = binary.BigEndian.AppendUint64(dst, otp25Flags)
	dst = binary.BigEndian.AppendUint32(dst, 0x12345678)
	dst = binary.BigEndian.AppendUint32(dst, 1)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(node)))
	return append(dst, node...)
}
