package tcpbind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A stream carries WireGuard messages, each prefixed by its length as a
// big-endian uint16. Nothing else is on the stream: WireGuard's own
// encryption and authentication cover the messages end to end.
const (
	frameHeader = 2
	maxMessage  = 1<<16 - 1
	minMessage  = 32 // a data message carrying a keepalive: header and tag
)

// WireGuard message types and the fixed sizes of the handshake messages.
const (
	msgInitiation = 1
	msgResponse   = 2
	msgCookie     = 3
	msgData       = 4

	sizeInitiation = 148
	sizeResponse   = 92
	sizeCookie     = 64
)

// errFrame is a stream that does not carry WireGuard messages: it is closed.
var errFrame = errors.New("not a WireGuard message")

// appendFrame appends msg with its length prefix to dst.
func appendFrame(dst, msg []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...)
}

// checkMessage rejects what cannot be a WireGuard message: an unknown type,
// non-zero reserved bytes, or a size its type cannot have. It looks at the
// first four bytes and the length only, so junk is refused before it is read.
func checkMessage(head []byte, n int) error {
	if n < minMessage || len(head) < 4 || head[1]|head[2]|head[3] != 0 {
		return errFrame
	}
	switch head[0] {
	case msgInitiation:
		if n == sizeInitiation {
			return nil
		}
	case msgResponse:
		if n == sizeResponse {
			return nil
		}
	case msgCookie:
		if n == sizeCookie {
			return nil
		}
	case msgData:
		return nil
	}
	return errFrame
}

// readFrame reads one message into a buffer from alloc(n) (len n) and
// returns it. Anything but a well-formed WireGuard message is an error
// wrapping errFrame, refused before alloc is called; a stream that ends
// between messages is io.EOF.
func readFrame(r io.Reader, alloc func(n int) []byte) ([]byte, error) {
	var fr frameReader
	fr.r = r
	return fr.next(alloc)
}

// frameReader reads frames from one stream; its header buffer lives with
// it, so a frame costs no allocation.
type frameReader struct {
	r   io.Reader
	hdr [frameHeader + 4]byte
}

// next is readFrame on the reader's stream.
func (fr *frameReader) next(alloc func(n int) []byte) ([]byte, error) {
	r, hdr := fr.r, fr.hdr[:]
	if _, err := io.ReadFull(r, hdr[:frameHeader]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:frameHeader]))
	if n < minMessage {
		return nil, fmt.Errorf("%w: length %d", errFrame, n)
	}
	if _, err := io.ReadFull(r, hdr[frameHeader:]); err != nil {
		return nil, unexpected(err)
	}
	if err := checkMessage(hdr[frameHeader:], n); err != nil {
		return nil, fmt.Errorf("%w: type %d, length %d", err, hdr[frameHeader], n)
	}
	b := alloc(n)
	copy(b, hdr[frameHeader:])
	if _, err := io.ReadFull(r, b[4:n]); err != nil {
		return nil, unexpected(err)
	}
	return b, nil
}

// unexpected turns an end of stream inside a message into an error.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
