package peers

import (
	"strings"
	"testing"
	"time"
)

func TestSerialExpires(t *testing.T) {
	for _, tc := range []struct {
		name    string
		src     string
		serial  uint64
		expires time.Time
	}{
		{"none", base, 0, time.Time{}},
		{"serial", "serial: 42\n" + base, 42, time.Time{}},
		{"largest", base + "serial: 18446744073709551615\n", 1<<64 - 1, time.Time{}},
		{"quoted", base + "serial: '7'\n", 7, time.Time{}},
		{"expires", base + "serial: 3\nexpires: 2027-01-31T12:00:00+01:00\n", 3, time.Date(2027, 1, 31, 11, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("peers.yaml", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if f.Serial != tc.serial || !f.Expires.Equal(tc.expires) {
				t.Errorf("Serial, Expires = %d, %v; want %d, %v", f.Serial, f.Expires, tc.serial, tc.expires)
			}
		})
	}
}

func TestBumpSerial(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		serial         uint64
	}{
		{"absent", "# the fleet\n\noverlay:\n  prefix: 10.77.0.0/16\n",
			"# the fleet\n\nserial: 1\noverlay:\n  prefix: 10.77.0.0/16\n", 1},
		{"absent, head comment stays with its key", "# the overlay\noverlay:\n  prefix: 10.77.0.0/16\n",
			"serial: 1\n# the overlay\noverlay:\n  prefix: 10.77.0.0/16\n", 1},
		{"present", "overlay:\n  prefix: 10.77.0.0/16\nserial: 9   # bumped by overlayctl\n",
			"overlay:\n  prefix: 10.77.0.0/16\nserial: 10   # bumped by overlayctl\n", 10},
		{"carry", "serial: 99\r\noverlay: {prefix: 10.77.0.0/16}\r\n",
			"serial: 100\r\noverlay: {prefix: 10.77.0.0/16}\r\n", 100},
		{"crlf, absent", "overlay: {prefix: 10.77.0.0/16}\r\n",
			"serial: 1\r\noverlay: {prefix: 10.77.0.0/16}\r\n", 1},
		{"empty", "", "serial: 1\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, serial, err := BumpSerial([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want || serial != tc.serial {
				t.Errorf("BumpSerial = %d\n%s\nwant %d\n%s", serial, got, tc.serial, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, in, want string }{
		{"not a number", "serial: x\n", "line 1: serial: \"x\" is not a whole number"},
		{"quoted", "serial: '3'\n", "line 1: serial: not a plain number; edit it by hand"},
		{"at the end", "serial: 18446744073709551615\n", "line 1: serial: 18446744073709551615 cannot be increased"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := BumpSerial([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("BumpSerial = %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzBumpSerial: BumpSerial never panics, and on a valid file yields a
// valid file one serial higher, the same but for that.
func FuzzBumpSerial(f *testing.F) {
	f.Add([]byte(keys.Replace(base)))
	f.Add([]byte("serial: 3\n" + keys.Replace(base)))
	f.Add([]byte("# c\n\n  overlay:\n    prefix: 10.77.0.0/16\n  serial: 9 # x\n"))
	f.Add([]byte("serial: &a 4\nexpires: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		before, err := Parse("peers.yaml", data)
		out, serial, berr := BumpSerial(data)
		if err != nil || berr != nil {
			return
		}
		after, err := Parse("peers.yaml", out)
		if err != nil {
			t.Fatalf("bumped file invalid: %v\n%s", err, out)
		}
		if after.Serial != before.Serial+1 || serial != after.Serial {
			t.Fatalf("serial %d -> %d (returned %d)\n%s", before.Serial, after.Serial, serial, out)
		}
		if len(after.Peers) != len(before.Peers) || len(after.Rules) != len(before.Rules) || len(after.Networks) != len(before.Networks) {
			t.Fatalf("bump changed the file's content\n%s", out)
		}
	})
}

func TestSetExpires(t *testing.T) {
	at := time.Date(2027, 1, 31, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	for _, tc := range []struct{ name, in, want string }{
		{"absent, below serial", "# fleet\nserial: 4 # bumped\noverlay:\n  prefix: 10.77.0.0/16\n",
			"# fleet\nserial: 4 # bumped\nexpires: 2027-01-31T11:00:00Z\noverlay:\n  prefix: 10.77.0.0/16\n"},
		{"absent, no serial", "# the overlay\noverlay:\n  prefix: 10.77.0.0/16\n",
			"expires: 2027-01-31T11:00:00Z\n# the overlay\noverlay:\n  prefix: 10.77.0.0/16\n"},
		{"present", "serial: 4\nexpires: 2026-01-01T00:00:00Z   # a month\noverlay: {prefix: 10.77.0.0/16}\n",
			"serial: 4\nexpires: 2027-01-31T11:00:00Z   # a month\noverlay: {prefix: 10.77.0.0/16}\n"},
		{"quoted", "expires: \"2026-01-01T00:00:00Z\"\r\nserial: 4\r\n",
			"expires: 2027-01-31T11:00:00Z\r\nserial: 4\r\n"},
		{"empty", "", "expires: 2027-01-31T11:00:00Z\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SetExpires([]byte(tc.in), at)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("SetExpires =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	if _, err := SetExpires([]byte("expires: |\n  2026-01-01T00:00:00Z\n"), at); err == nil || !strings.Contains(err.Error(), "line 1: expires: not a plain time") {
		t.Errorf("SetExpires of a block scalar = %v", err)
	}
}
