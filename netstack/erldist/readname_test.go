package erldist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

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
	long := bytes.Repeat([]byte{'x'}, MaxSendName)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
		err  error
	}{
		{"new format", AppendSendName(nil, "app@127.77.1.1"), "app@127.77.1.1", nil},
		{"old format", sendNameOld("app@pay-1"), "app@pay-1", nil},
		{"new, trailing bytes ignored", append(AppendSendName(nil, "a@b"), 1, 2), "a@b", nil},
		{"dynamic name: host only", AppendSendName(nil, "127.77.1.1"), "127.77.1.1", nil},
		{"empty", []byte{0, 0}, "", ErrSendNameShort},
		{"length only", []byte{0, 9}, "", ErrSendNameShort},
		{"new, name cut", AppendSendName(nil, "app@127.77.1.1")[:12], "", ErrSendNameShort},
		{"new, Nlen beyond body", func() []byte { b := AppendSendName(nil, "a@b"); b[2+14] = 200; return b }(), "", ErrSendNameShort},
		{"new, empty name", AppendSendName(nil, ""), "", ErrSendNameEmpty},
		{"old, empty name", sendNameOld(""), "", ErrSendNameEmpty},
		{"old, cut", sendNameOld("a@b")[:6], "", ErrSendNameShort},
		{"other tag", []byte{0, 3, 's', 'o', 'k'}, "", ErrSendNameTag},
		{"too large", append([]byte{0xff, 0xff}, long...), "", ErrSendNameTooLarge},
		{"TLS record", []byte{0x16, 0x03, 0x01, 0x02, 0x00}, "", ErrSendNameTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, MaxSendName+2)
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
// inside the input, and that ReadSendName agrees with ParseSendName.
func FuzzSendName(f *testing.F) {
	f.Add(AppendSendName(nil, "app@127.77.1.1"))
	f.Add(sendNameOld("app@pay-1"))
	f.Add([]byte{0, 1, 'N'})
	f.Add([]byte{0x16, 0x03, 0x01})
	f.Add([]byte{0xff, 0xff, 'n'})
	p := &peers.Peer{Name: "pay-1", Face: netip.MustParseAddr("127.77.1.1")}
	f.Fuzz(func(t *testing.T, in []byte) {
		buf := make([]byte, MaxSendName+2)
		frame, name, err := ReadSendName(bytes.NewReader(in), buf)
		if err != nil {
			return
		}
		if len(frame) < 3 || !bytes.Equal(frame, in[:len(frame)]) {
			t.Fatalf("frame %x is not a prefix of the input", frame)
		}
		pname, perr := ParseSendName(frame[2:])
		if perr != nil || !bytes.Equal(pname, name) {
			t.Fatalf("ParseSendName disagrees: %q %v vs %q", pname, perr, name)
		}
		if len(name) == 0 || len(name) > len(frame)-2 {
			t.Fatalf("name of %d bytes from a %d-byte frame", len(name), len(frame))
		}
		NameIsPeers(name, p)
	})
}
