package erldist

// EPMD wire format. All integers are big-endian. Requests are framed
// `Length:2 | Body`; responses are not framed. The userspace relay reads
// requests from a stream (ReadRequest); the packet filter splits one off a
// segment (ParseRequest).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// EPMD request and response tags (the first byte of a body).
const (
	TagAlive2Req      = 120
	TagAlive2Resp     = 121
	TagAlive2XResp    = 118
	TagPortPlease2Req = 122
	TagPort2Resp      = 119
	TagNamesReq       = 110
	TagDumpReq        = 100
	TagKillReq        = 107
	TagStopReq        = 115
)

// MaxRequestBody caps an EPMD request body. A PORT_PLEASE2 carries one node
// name (at most 255 bytes in practice); ALIVE2 adds a few fields and an extra
// blob. Anything larger is not a request a client we serve would send.
const MaxRequestBody = 1024

var (
	// ErrShortRequest means the input ended inside a frame.
	ErrShortRequest = errors.New("epmd: truncated request")
	// ErrEmptyRequest means a frame with a zero length (no tag).
	ErrEmptyRequest = errors.New("epmd: empty request")
	// ErrRequestTooLarge means a frame longer than the cap.
	ErrRequestTooLarge = errors.New("epmd: request too large")
	// ErrShortResponse means a response ended before its fields did.
	ErrShortResponse = errors.New("epmd: truncated response")
	// ErrNotPort2Resp means the response does not start with PORT2_RESP.
	ErrNotPort2Resp = errors.New("epmd: not a PORT2_RESP")
)

// RequestName names a request tag for logs, e.g. "ALIVE2_REQ" or "tag 42".
func RequestName(tag byte) string {
	switch tag {
	case TagAlive2Req:
		return "ALIVE2_REQ"
	case TagPortPlease2Req:
		return "PORT_PLEASE2_REQ"
	case TagNamesReq:
		return "NAMES_REQ"
	case TagDumpReq:
		return "DUMP_REQ"
	case TagKillReq:
		return "KILL_REQ"
	case TagStopReq:
		return "STOP_REQ"
	}
	return "tag " + strconv.Itoa(int(tag))
}

// ParseRequest splits one framed request off the front of b. It returns the
// body (tag first) and the bytes after the frame. Bodies longer than max are
// refused before they are complete, so a caller can stop reading early.
func ParseRequest(b []byte, max int) (body, rest []byte, err error) {
	if len(b) < 2 {
		return nil, b, ErrShortRequest
	}
	n := int(binary.BigEndian.Uint16(b))
	switch {
	case n == 0:
		return nil, b, ErrEmptyRequest
	case n > max:
		return nil, b, fmt.Errorf("%w: %d bytes (cap %d)", ErrRequestTooLarge, n, max)
	case len(b)-2 < n:
		return nil, b, ErrShortRequest
	}
	return b[2 : 2+n], b[2+n:], nil
}

// ReadRequest reads one framed request from r into buf and returns the whole
// frame (length prefix included, ready to forward) and its body. buf must
// hold at least 2+max bytes; nothing is allocated.
func ReadRequest(r io.Reader, buf []byte, max int) (frame, body []byte, err error) {
	if len(buf) < 2+max {
		return nil, nil, fmt.Errorf("epmd: read buffer of %d bytes is below 2+%d", len(buf), max)
	}
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return nil, nil, shortIfEOF(err, ErrShortRequest)
	}
	n := int(binary.BigEndian.Uint16(buf))
	switch {
	case n == 0:
		return nil, nil, ErrEmptyRequest
	case n > max:
		return nil, nil, fmt.Errorf("%w: %d bytes (cap %d)", ErrRequestTooLarge, n, max)
	}
	if _, err := io.ReadFull(r, buf[2:2+n]); err != nil {
		return nil, nil, shortIfEOF(err, ErrShortRequest)
	}
	return buf[:2+n], buf[2 : 2+n], nil
}

// shortIfEOF turns an end of input in the middle of a message into short.
func shortIfEOF(err, short error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return short
	}
	return err
}

// AppendRequest frames body (tag first) and appends it to dst.
func AppendRequest(dst, body []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(body)))
	return append(dst, body...)
}

// Port2Resp is a parsed PORT2_RESP. Name and Extra alias the input.
type Port2Resp struct {
	Result   byte // 0: ok; anything else: no such name
	Port     uint16
	NodeType byte // 77 normal, 72 hidden
	Proto    byte
	High     uint16
	Low      uint16
	Name     []byte
	Extra    []byte
}

// OK reports whether the name was found.
func (p *Port2Resp) OK() bool { return p.Result == 0 }

// ParsePort2Resp parses a PORT2_RESP from the start of b. An error reply
// (`119, Result>0`) is complete after two bytes; an ok one must carry every
// field through Extra. Trailing bytes are ignored (epmd closes after one
// reply). Nothing is allocated.
func ParsePort2Resp(b []byte) (Port2Resp, error) {
	var p Port2Resp
	if len(b) < 2 {
		return p, ErrShortResponse
	}
	if b[0] != TagPort2Resp {
		return p, fmt.Errorf("%w: tag %d", ErrNotPort2Resp, b[0])
	}
	p.Result = b[1]
	if p.Result != 0 {
		return p, nil
	}
	if len(b) < 12 {
		return Port2Resp{}, ErrShortResponse
	}
	p.Port = binary.BigEndian.Uint16(b[2:])
	p.NodeType = b[4]
	p.Proto = b[5]
	p.High = binary.BigEndian.Uint16(b[6:])
	p.Low = binary.BigEndian.Uint16(b[8:])
	nlen := int(binary.BigEndian.Uint16(b[10:]))
	rest := b[12:]
	if len(rest) < nlen+2 {
		return Port2Resp{}, ErrShortResponse
	}
	p.Name = rest[:nlen:nlen]
	rest = rest[nlen:]
	elen := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < elen {
		return Port2Resp{}, ErrShortResponse
	}
	p.Extra = rest[:elen:elen]
	return p, nil
}

// Port2RespComplete reports whether b holds a whole PORT2_RESP, so a reader
// can stop before the peer closes. A malformed reply counts as complete:
// ParsePort2Resp will say what is wrong with it.
func Port2RespComplete(b []byte) bool {
	_, err := ParsePort2Resp(b)
	return !errors.Is(err, ErrShortResponse)
}

// NameEntry is one line of a NAMES reply.
type NameEntry struct {
	Name string
	Port uint16
}

// ParseNames parses a whole NAMES reply: `EpmdPort:4`, then lines
// `name <N> at port <P>\n`. Lines of another shape are skipped (epmd has
// printed other lines in the past); a last line without a newline counts.
func ParseNames(b []byte) (epmdPort uint32, names []NameEntry, err error) {
	if len(b) < 4 {
		return 0, nil, ErrShortResponse
	}
	epmdPort = binary.BigEndian.Uint32(b)
	rest := b[4:]
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if e, ok := parseNameLine(line); ok {
			names = append(names, e)
		}
	}
	return epmdPort, names, nil
}

// parseNameLine parses `name <N> at port <P>`. Node names hold no spaces.
func parseNameLine(line []byte) (NameEntry, bool) {
	const pre, mid = "name ", " at port "
	if !bytes.HasPrefix(line, []byte(pre)) {
		return NameEntry{}, false
	}
	line = line[len(pre):]
	i := bytes.Index(line, []byte(mid))
	if i <= 0 {
		return NameEntry{}, false
	}
	port, err := strconv.ParseUint(string(bytes.TrimSpace(line[i+len(mid):])), 10, 16)
	if err != nil || port == 0 {
		return NameEntry{}, false
	}
	return NameEntry{Name: string(line[:i]), Port: uint16(port)}, true
}
