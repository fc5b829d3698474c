package tcpbind

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func message(typ byte, n int) []byte {
	m := make([]byte, n)
	m[0] = typ
	for i := 4; i < n; i++ {
		m[i] = byte(i)
	}
	return m
}

func alloc(n int) []byte { return make([]byte, n) }

func TestFrameRoundTrip(t *testing.T) {
	msgs := [][]byte{message(msgInitiation, sizeInitiation), message(msgResponse, sizeResponse),
		message(msgCookie, sizeCookie), message(msgData, minMessage), message(msgData, 1500), message(msgData, maxMessage)}
	var stream []byte
	for _, m := range msgs {
		stream = appendFrame(stream, m)
	}
	r := bytes.NewReader(stream)
	for i, want := range msgs {
		got, err := readFrame(r, alloc)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("message %d: got %d bytes, %v; want %d bytes", i, len(got), err, len(want))
		}
	}
	if _, err := readFrame(r, alloc); err != io.EOF {
		t.Fatalf("after the last message: %v, want io.EOF", err)
	}
}

func TestFrameRejects(t *testing.T) {
	for name, stream := range map[string][]byte{
		"too short":         appendFrame(nil, message(msgData, minMessage-1)),
		"zero length":       {0, 0},
		"unknown type":      appendFrame(nil, message(9, 64)),
		"reserved bytes":    appendFrame(nil, append([]byte{msgData, 1, 0, 0}, make([]byte, 60)...)),
		"initiation size":   appendFrame(nil, message(msgInitiation, sizeInitiation+1)),
		"response size":     appendFrame(nil, message(msgResponse, sizeResponse-1)),
		"cookie size":       appendFrame(nil, message(msgCookie, 100)),
		"http request":      []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"truncated":         appendFrame(nil, message(msgData, 100))[:50],
		"truncated in head": appendFrame(nil, message(msgData, 100))[:4],
		"truncated length":  {0},
	} {
		_, err := readFrame(bytes.NewReader(stream), alloc)
		if err == nil || err == io.EOF {
			t.Errorf("%s: %v, want an error", name, err)
		}
		if name != "truncated" && name != "truncated in head" && name != "truncated length" && !errors.Is(err, errFrame) {
			t.Errorf("%s: %v, want errFrame", name, err)
		}
	}
}

// FuzzFrame feeds arbitrary streams to the reader: it must never panic,
// never return more than it read, and only return well-formed messages.
func FuzzFrame(f *testing.F) {
	f.Add(appendFrame(appendFrame(nil, message(msgInitiation, sizeInitiation)), message(msgData, 64)))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			m, err := readFrame(r, alloc)
			if err != nil {
				return
			}
			if len(m) > len(data) || checkMessage(m, len(m)) != nil {
				t.Fatalf("accepted a %d-byte message of type %d from %d bytes", len(m), m[0], len(data))
			}
		}
	})
}
