package netstack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/peers"
)

// sendNameOld is the pre-OTP-23 send_name ('n', version 5).
func sendNameOld(name string) []byte {
	body := []byte{'n', 0, 5}
	body = binary.BigEndian.AppendUint32(body, 0x3f7fbd)
	body = append(body, name...)
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)
}

func TestParseSendName(t *testing.T) {
	long := bytes.Repeat([]byte{'x'}, erldist.MaxSendName)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
		err  error
	}{
		{"new format", erldist.AppendSendName(nil, "app@127.77.1.1"), "app@127.77.1.1", nil},
		{"old format", sendNameOld("app@pay-1"), "app@pay-1", nil},
		{"new, trailing bytes ignored", append(erldist.AppendSendName(nil, "a@b"), 1, 2), "a@b", nil},
		{"dynamic name: host only", erldist.AppendSendName(nil, "127.77.1.1"), "127.77.1.1", nil},
		{"empty", []byte{0, 0}, "", erldist.ErrSendNameShort},
		{"length only", []byte{0, 9}, "", erldist.ErrSendNameShort},
		{"new, name cut", erldist.AppendSendName(nil, "app@127.77.1.1")[:12], "", erldist.ErrSendNameShort},
		{"new, Nlen beyond body", func() []byte { b := erldist.AppendSendName(nil, "a@b"); b[2+14] = 200; return b }(), "", erldist.ErrSendNameShort},
		{"new, empty name", erldist.AppendSendName(nil, ""), "", erldist.ErrSendNameEmpty},
		{"old, empty name", sendNameOld(""), "", erldist.ErrSendNameEmpty},
		{"old, cut", sendNameOld("a@b")[:6], "", erldist.ErrSendNameShort},
		{"other tag", []byte{0, 3, 's', 'o', 'k'}, "", erldist.ErrSendNameTag},
		{"too large", append([]byte{0xff, 0xff}, long...), "", erldist.ErrSendNameTooLarge},
		{"TLS record", []byte{0x16, 0x03, 0x01, 0x02, 0x00}, "", erldist.ErrSendNameTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, erldist.MaxSendName+2)
			frame, name, err := ReadSendName(bytes.NewReader(tc.in), buf)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if string(name) != tc.want {
				t.Fatalf("name %q, want %q", name, tc.want)
			}
			if !bytes.HasPrefix(tc.in, frame) || len(frame) != 2+int(binary.BigEndian.Uint16(tc.in)) {
				t.Fatalf("frame %x is not the input's first message", frame)
			}
		})
	}
}

// FuzzSendName checks that parsing never panics, that a parsed name lies
// inside the input, and that ReadSendName agrees with erldist.ParseSendName.
func FuzzSendName(f *testing.F) {
	f.Add(erldist.AppendSendName(nil, "app@127.77.1.1"))
	f.Add(sendNameOld("app@pay-1"))
	f.Add([]byte{0, 1, 'N'})
	f.Add([]byte{0x16, 0x03, 0x01})
	f.Add([]byte{0xff, 0xff, 'n'})
	p := &peers.Peer{Name: "pay-1", Face: netip.MustParseAddr("127.77.1.1")}
	f.Fuzz(func(t *testing.T, in []byte) {
		buf := make([]byte, erldist.MaxSendName+2)
		frame, name, err := ReadSendName(bytes.NewReader(in), buf)
		if err != nil {
			return
		}
		if len(frame) < 3 || !bytes.Equal(frame, in[:len(frame)]) {
			t.Fatalf("frame %x is not a prefix of the input", frame)
		}
		pname, perr := erldist.ParseSendName(frame[2:])
		if perr != nil || !bytes.Equal(pname, name) {
			t.Fatalf("erldist.ParseSendName disagrees: %q %v vs %q", pname, perr, name)
		}
		if len(name) == 0 || len(name) > len(frame)-2 {
			t.Fatalf("name of %d bytes from a %d-byte frame", len(name), len(frame))
		}
		erldist.NameIsPeers(name, p)
	})
}

// distHello sends a send_name naming node through c (to an echo behind a
// dist port) and reads it back, as the first exchange of a dist connection.
func distHello(t *testing.T, c net.Conn, node string) {
	t.Helper()
	msg := erldist.AppendSendName(nil, node)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("send_name: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("send_name echo: %x, %v", got, err)
	}
	c.SetDeadline(time.Time{})
}
