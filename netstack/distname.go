package netstack

// The distribution handshake's first message, send_name, names the dialling
// node; the stack refuses a name that is not the source peer's (see package
// erldist, which TUN mode's packet filter uses too).

import (
	"encoding/binary"
	"io"
	"time"

	"github.com/nodewire/nodewire/netstack/erldist"
)

// sendNameTimeout is how long an inbound distribution connection may take
// to send its name; a real node sends it at once.
const sendNameTimeout = 10 * time.Second

// reasonNodeName labels refused handshakes (metrics, refusals).
const reasonNodeName = "node_name"

// ReadSendName reads the first message of a distribution connection into
// buf (at least erldist.MaxSendName+2 bytes) and returns every byte read
// (to pass on to the node) and the node name in it. A stream that starts
// like a TLS record returns its first two bytes and erldist.ErrSendNameTLS.
func ReadSendName(r io.Reader, buf []byte) (frame, name []byte, err error) {
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return nil, nil, shortIfEOF(err, erldist.ErrSendNameShort)
	}
	if erldist.IsTLS(buf) {
		return buf[:2], nil, erldist.ErrSendNameTLS
	}
	n := int(binary.BigEndian.Uint16(buf[:2]))
	if n > erldist.MaxSendName || 2+n > len(buf) {
		return buf[:2], nil, erldist.ErrSendNameTooLarge
	}
	if _, err := io.ReadFull(r, buf[2:2+n]); err != nil {
		return nil, nil, shortIfEOF(err, erldist.ErrSendNameShort)
	}
	name, err = erldist.ParseSendName(buf[2 : 2+n])
	return buf[:2+n], name, err
}
