package erldist

// Reading send_name from a stream: the userspace stack reads it off an
// accepted connection; TUN mode's packet filter, which sees segments,
// uses SplitSendName instead.

import (
	"encoding/binary"
	"io"
)

// ReadSendName reads the first message of a distribution connection into
// buf (at least MaxSendName+2 bytes) and returns every byte read
// (to pass on to the node) and the node name in it. A stream that starts
// like a TLS record returns its first two bytes and ErrSendNameTLS.
func ReadSendName(r io.Reader, buf []byte) (frame, name []byte, err error) {
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return nil, nil, shortIfEOF(err, ErrSendNameShort)
	}
	if IsTLS(buf) {
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
