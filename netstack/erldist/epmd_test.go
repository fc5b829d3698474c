package erldist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// port2OK builds an ok PORT2_RESP for name on port.
func port2OK(port uint16, name string, extra []byte) []byte {
	b := []byte{TagPort2Resp, 0}
	b = binary.BigEndian.AppendUint16(b, port)
	b = append(b, 77, 0, 0, 6, 0, 5)
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(extra)))
	return append(b, extra...)
}

// alive2 builds an ALIVE2_REQ body.
func alive2(port uint16, name string) []byte {
	b := []byte{TagAlive2Req}
	b = binary.BigEndian.AppendUint16(b, port)
	b = append(b, 77, 0, 0, 6, 0, 5)
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	return append(b, 0, 0)
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		max      int
		body     []byte
		rest     []byte
		err      error
		errMatch string
	}{
		{name: "port please", in: []byte{0, 4, 122, 'a', 'p', 'p'}, max: 100, body: []byte{122, 'a', 'p', 'p'}, rest: []byte{}},
		{name: "names", in: []byte{0, 1, 110}, max: 100, body: []byte{110}, rest: []byte{}},
		{name: "trailing bytes kept", in: []byte{0, 1, 110, 9, 9}, max: 100, body: []byte{110}, rest: []byte{9, 9}},
		{name: "empty input", in: nil, max: 100, err: ErrShortRequest},
		{name: "one length byte", in: []byte{0}, max: 100, err: ErrShortRequest},
		{name: "truncated body", in: []byte{0, 4, 122, 'a'}, max: 100, err: ErrShortRequest},
		{name: "zero length", in: []byte{0, 0}, max: 100, err: ErrEmptyRequest},
		{name: "over cap", in: []byte{0xff, 0xff, 122}, max: 1024, err: ErrRequestTooLarge, errMatch: "65535 bytes"},
		{name: "exactly cap", in: []byte{0, 2, 122, 'x'}, max: 2, body: []byte{122, 'x'}, rest: []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, rest, err := ParseRequest(tt.in, tt.max)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil && !strings.Contains(err.Error(), tt.errMatch) {
				t.Errorf("err = %q, want it to mention %q", err, tt.errMatch)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(body, tt.body) || !bytes.Equal(rest, tt.rest) {
				t.Errorf("body, rest = %v, %v; want %v, %v", body, rest, tt.body, tt.rest)
			}
		})
	}
}

func TestReadRequest(t *testing.T) {
	buf := make([]byte, 2+MaxRequestBody)
	tests := []struct {
		name  string
		in    []byte
		frame []byte
		err   error
	}{
		{name: "port please", in: AppendRequest(nil, []byte("\x7aapp")), frame: []byte("\x00\x04\x7aapp")},
		{name: "alive2 framed", in: AppendRequest(nil, alive2(9100, "app")), frame: AppendRequest(nil, alive2(9100, "app"))},
		{name: "stops after one frame", in: []byte{0, 1, 110, 0, 1, 110}, frame: []byte{0, 1, 110}},
		{name: "closed before anything", in: nil, err: ErrShortRequest},
		{name: "closed inside length", in: []byte{0}, err: ErrShortRequest},
		{name: "closed inside body", in: []byte{0, 9, 122, 'a'}, err: ErrShortRequest},
		{name: "zero length", in: []byte{0, 0}, err: ErrEmptyRequest},
		{name: "too large", in: []byte{0x10, 0x00}, err: ErrRequestTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame, body, err := ReadRequest(bytes.NewReader(tt.in), buf, MaxRequestBody)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(frame, tt.frame) || !bytes.Equal(body, tt.frame[2:]) {
				t.Errorf("frame, body = %v, %v; want %v", frame, body, tt.frame)
			}
		})
	}
	if _, _, err := ReadRequest(bytes.NewReader([]byte{0, 1, 110}), make([]byte, 10), MaxRequestBody); err == nil {
		t.Error("ReadRequest accepted a buffer below the cap")
	}
}

func TestReadRequestPassesReadErrors(t *testing.T) {
	boom := errors.New("boom")
	_, _, err := ReadRequest(io.MultiReader(bytes.NewReader([]byte{0}), errReader{boom}), make([]byte, 2+MaxRequestBody), MaxRequestBody)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestParsePort2Resp(t *testing.T) {
	ok := port2OK(9100, "app", []byte{1, 2})
	tests := []struct {
		name string
		in   []byte
		want Port2Resp
		err  error
	}{
		{name: "ok", in: ok, want: Port2Resp{Result: 0, Port: 9100, NodeType: 77, Proto: 0, High: 6, Low: 5, Name: []byte("app"), Extra: []byte{1, 2}}},
		{name: "ok, trailing bytes", in: append(append([]byte{}, ok...), 7, 7), want: Port2Resp{Port: 9100, NodeType: 77, High: 6, Low: 5, Name: []byte("app"), Extra: []byte{1, 2}}},
		{name: "ok, empty name and extra", in: port2OK(1, "", nil), want: Port2Resp{Port: 1, NodeType: 77, High: 6, Low: 5, Name: []byte{}, Extra: []byte{}}},
		{name: "not found", in: []byte{119, 1}, want: Port2Resp{Result: 1}},
		{name: "empty", in: nil, err: ErrShortResponse},
		{name: "tag only", in: []byte{119}, err: ErrShortResponse},
		{name: "wrong tag", in: []byte{118, 0, 0, 0, 0, 1}, err: ErrNotPort2Resp},
		{name: "ok cut in fixed part", in: ok[:8], err: ErrShortResponse},
		{name: "ok cut in name", in: ok[:13], err: ErrShortResponse},
		{name: "ok cut before extra length", in: ok[:15], err: ErrShortResponse},
		{name: "ok cut in extra", in: ok[:len(ok)-1], err: ErrShortResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePort2Resp(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				if !reflect.DeepEqual(got, Port2Resp{}) && tt.err != ErrNotPort2Resp {
					t.Errorf("got %+v with an error, want zero", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got.OK() != (tt.want.Result == 0) {
				t.Errorf("OK() = %v", got.OK())
			}
			if complete := Port2RespComplete(tt.in); !complete {
				t.Error("Port2RespComplete = false on a whole reply")
			}
		})
	}
	if Port2RespComplete(ok[:len(ok)-1]) {
		t.Error("Port2RespComplete = true on a cut reply")
	}
	if !Port2RespComplete([]byte{1, 2}) {
		t.Error("Port2RespComplete = false on a malformed reply; it should let the parser refuse it")
	}
}

func TestParsePort2RespDoesNotAllocate(t *testing.T) {
	ok := port2OK(9100, "app", nil)
	if n := testing.AllocsPerRun(100, func() { ParsePort2Resp(ok) }); n != 0 {
		t.Errorf("ParsePort2Resp allocates %v times", n)
	}
}

func TestParseNames(t *testing.T) {
	hdr := []byte{0, 0, 0x11, 0x11} // 4369
	tests := []struct {
		name  string
		in    string
		names []NameEntry
		err   error
	}{
		{name: "none", in: ""},
		{name: "two", in: "name app at port 9100\nname mon at port 41233\n", names: []NameEntry{{"app", 9100}, {"mon", 41233}}},
		{name: "last line without newline", in: "name app at port 9100", names: []NameEntry{{"app", 9100}}},
		{name: "odd lines skipped", in: "hello\nname app at port 9100\nname x at port notaport\nname y at port 0\nname z at port 70000\n\n", names: []NameEntry{{"app", 9100}}},
		{name: "cut inside a line", in: "name app at port 9100\nname mon at po", names: []NameEntry{{"app", 9100}}},
		{name: "crlf tolerated", in: "name app at port 9100\r\n", names: []NameEntry{{"app", 9100}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, names, err := ParseNames(append(append([]byte{}, hdr...), tt.in...))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if port != 4369 {
				t.Errorf("epmd port = %d, want 4369", port)
			}
			if !reflect.DeepEqual(names, tt.names) {
				t.Errorf("names = %v, want %v", names, tt.names)
			}
		})
	}
	if _, _, err := ParseNames([]byte{0, 0, 1}); !errors.Is(err, ErrShortResponse) {
		t.Errorf("short header: err = %v", err)
	}
}

func TestRequestName(t *testing.T) {
	for tag, want := range map[byte]string{120: "ALIVE2_REQ", 122: "PORT_PLEASE2_REQ", 110: "NAMES_REQ", 100: "DUMP_REQ", 107: "KILL_REQ", 115: "STOP_REQ", 42: "tag 42"} {
		if got := RequestName(tag); got != want {
			t.Errorf("RequestName(%d) = %q, want %q", tag, got, want)
		}
	}
}

// FuzzEPMDRequest checks that framing never panics, never returns a body
// beyond the cap or the input, and that ReadRequest agrees with
// ParseRequest.
func FuzzEPMDRequest(f *testing.F) {
	f.Add([]byte{0, 4, 122, 'a', 'p', 'p'}, 1024)
	f.Add([]byte{0, 1, 110}, 1024)
	f.Add(AppendRequest(nil, alive2(9100, "app")), 1024)
	f.Add([]byte{0xff, 0xff}, 1024)
	f.Add([]byte{0, 0}, 1)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max < 1 || max > 1<<16 {
			return
		}
		body, rest, err := ParseRequest(in, max)
		frame, rbody, rerr := ReadRequest(bytes.NewReader(in), make([]byte, 2+max), max)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("ParseRequest err %v, ReadRequest err %v", err, rerr)
		}
		if err != nil {
			return
		}
		if len(body) == 0 || len(body) > max {
			t.Fatalf("body of %d bytes, cap %d", len(body), max)
		}
		if len(body)+len(rest)+2 != len(in) {
			t.Fatalf("body %d + rest %d + 2 != input %d", len(body), len(rest), len(in))
		}
		if !bytes.Equal(body, rbody) || !bytes.Equal(frame, in[:2+len(body)]) {
			t.Fatal("ReadRequest disagrees with ParseRequest")
		}
	})
}

// FuzzPort2Resp checks that parsing never panics and that an ok reply's
// fields lie inside the input.
func FuzzPort2Resp(f *testing.F) {
	f.Add(port2OK(9100, "app", nil))
	f.Add(port2OK(1, "", []byte{1, 2, 3}))
	f.Add([]byte{119, 1})
	f.Add([]byte{119, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ParsePort2Resp(in)
		if err != nil {
			return
		}
		if !p.OK() {
			return
		}
		if 12+len(p.Name)+2+len(p.Extra) > len(in) {
			t.Fatalf("fields (%d name, %d extra) exceed %d input bytes", len(p.Name), len(p.Extra), len(in))
		}
		if !Port2RespComplete(in) {
			t.Fatal("parsed but not complete")
		}
		ParseNames(in)
	})
}

// BenchmarkParseEPMD measures the parsers that read bytes from the network
// on every lookup: a request frame and a PORT2_RESP.
func BenchmarkParseEPMD(b *testing.B) {
	req := AppendRequest(nil, append([]byte{TagPortPlease2Req}, "app"...))
	resp := []byte{119, 0, 0x11, 0x12, 77, 0, 0, 6, 0, 6, 0, 3, 'a', 'p', 'p', 0, 0}
	if _, err := ParsePort2Resp(resp); err != nil {
		b.Fatal(err)
	}
	b.Run("request", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := ParseRequest(req, 512); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("port2resp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParsePort2Resp(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
}
