package erldist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestReplyNode(t *testing.T) {
	ok := AppendReply(nil, "app@127.77.2.1")
	old := func(node string) []byte {
		b := []byte{0, 3, 's', 'o', 'k'}
		b = binary.BigEndian.AppendUint16(b, uint16(11+len(node)))
		b = append(b, 'n', 0, 5, 0, 0, 0x7f, 0xfd, 1, 2, 3, 4)
		return append(b, node...)
	}
	simultaneous := append([]byte{0, 16, 's'}, "ok_simultaneous"...)
	simultaneous = append(simultaneous, ok[5:]...)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
		n    int
		err  error
	}{
		{"ok, new challenge", ok, "app@127.77.2.1", len(ok), nil},
		{"ok, new challenge, more after", append(ok[:len(ok):len(ok)], 9, 9), "app@127.77.2.1", len(ok), nil},
		{"ok, old challenge", old("b@pay-2"), "b@pay-2", len(old("b@pay-2")), nil},
		{"ok_simultaneous", simultaneous, "app@127.77.2.1", len(simultaneous), nil},
		{"nothing", nil, "", 0, ErrReplyShort},
		{"status only", ok[:5], "", 0, ErrReplyShort},
		{"challenge cut", ok[:len(ok)-1], "", 0, ErrReplyShort},
		{"nok", []byte{0, 4, 's', 'n', 'o', 'k'}, "", 0, ErrReplyNotOK},
		{"alive", []byte{0, 6, 's', 'a', 'l', 'i', 'v', 'e'}, "", 0, ErrReplyNotOK},
		{"TLS", []byte{0x16, 0x03, 0x03, 0, 0x40}, "", 0, ErrReplyNotOK},
		{"challenge with a wrong name length", func() []byte { b := AppendReply(nil, "a@b"); b[len(b)-4] = 9; return b }(), "", 0, ErrReplyNotOK},
		{"challenge, empty name", AppendReply(nil, ""), "", 0, ErrReplyNotOK},
		{"other tag", []byte{0, 3, 's', 'o', 'k', 0, 1, 'a'}, "", 0, ErrReplyNotOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, n, err := ReplyNode(tc.in)
			if !errors.Is(err, tc.err) || string(name) != tc.want || n != tc.n {
				t.Fatalf("ReplyNode = %q, %d, %v; want %q, %d, %v", name, n, err, tc.want, tc.n, tc.err)
			}
		})
	}
}

func TestNodeAlive(t *testing.T) {
	for in, want := range map[string]string{"app@127.77.1.1": "app", "a@b@c": "a@b", "host": "", "@h": ""} {
		if got := string(NodeAlive([]byte(in))); got != want {
			t.Errorf("NodeAlive(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzReplyNode checks that ReplyNode never panics and that a name it
// returns lies inside the two messages it measured.
func FuzzReplyNode(f *testing.F) {
	f.Add(AppendReply(nil, "app@127.77.2.1"))
	f.Add([]byte{0, 3, 's', 'o', 'k', 0, 12, 'n', 0, 5, 0, 0, 0, 1, 1, 2, 3, 4, 'a'})
	f.Add([]byte{0, 4, 's', 'n', 'o', 'k'})
	f.Add([]byte{0x16, 0x03, 0x01})
	f.Fuzz(func(t *testing.T, in []byte) {
		name, n, err := ReplyNode(in)
		if err != nil {
			return
		}
		if n > len(in) || len(name) == 0 || !bytes.Contains(in[:n], name) {
			t.Fatalf("ReplyNode(%x) = %q, %d", in, name, n)
		}
	})
}
