package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nodewire/nodewire/peers"
)

// editTest is one run of an editing command on a fresh copy of a file.
type editTest struct {
	name  string
	file  string   // initial content; fixture when empty
	args  []string // after the command; "F" is replaced by the file's path
	code  int
	out   string // exact stdout
	err   string // stderr must contain it ("" requires it empty)
	lines int    // number of stderr lines, when err is set and lines > 0
	// added lines, in order, as one hunk at the end of the section; nil when
	// the file must be unchanged.
	check func(t *testing.T, before, after string)
}

func runEditTests(t *testing.T, tests []editTest) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.file
			if before == "" {
				before = fixture
			}
			path := writeFixture(t, before)
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = strings.ReplaceAll(a, "F", path)
			}
			r := runCmd("", args...)
			wantErr := strings.ReplaceAll(tc.err, "F", path)
			wantOut := strings.ReplaceAll(tc.out, "F", path)
			if r.code != tc.code || r.stdout != wantOut || (wantErr == "") != (r.stderr == "") || !strings.Contains(r.stderr, wantErr) {
				t.Errorf("overlayctl %q: code %d\nstdout %q\nstderr %q\nwant code %d\nstdout %q\nstderr containing %q",
					args, r.code, r.stdout, r.stderr, tc.code, wantOut, wantErr)
			}
			if tc.lines > 0 && strings.Count(r.stderr, "\n") != tc.lines {
				t.Errorf("stderr has %d lines, want %d:\n%s", strings.Count(r.stderr, "\n"), tc.lines, r.stderr)
			}
			for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
				if l != "" && !strings.HasPrefix(l, "overlayctl "+args[0]+": ") {
					t.Errorf("stderr line without its prefix: %q", l)
				}
			}
			after := readFile(t, path)
			if tc.check == nil {
				if after != before {
					t.Errorf("file changed on error:\n%s", after)
				}
				return
			}
			if _, err := peers.Parse(path, []byte(after)); err != nil {
				t.Errorf("written file is invalid: %v", err)
			}
			tc.check(t, before, unbump(t, before, after))
			// No temporary file is left next to it.
			ents, _ := os.ReadDir(filepath.Dir(path))
			if len(ents) != 1 {
				t.Errorf("directory holds %d entries", len(ents))
			}
		})
	}
}

// unbump checks that an edit raised the file's serial by one, and returns
// after with the serial line as it was in before (or without it, when
// before had none), for checks of what the edit itself changed.
func unbump(t *testing.T, before, after string) string {
	t.Helper()
	serialLine := func(s string) (string, uint64) {
		for _, l := range strings.SplitAfter(s, "\n") {
			if strings.HasPrefix(l, "serial:") {
				f := strings.Fields(strings.TrimPrefix(l, "serial:"))
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return l, n
			}
		}
		return "", 0
	}
	bl, bn := serialLine(before)
	al, an := serialLine(after)
	if al == "" || an != bn+1 {
		t.Errorf("serial after the edit: %q, want %d (one more than before)", al, bn+1)
		return after
	}
	return strings.Replace(after, al, bl, 1)
}

// inserted checks that after is before with lines inserted right after the
// line anchor, and nothing else changed.
func inserted(anchor string, lines ...string) func(t *testing.T, before, after string) {
	return func(t *testing.T, before, after string) {
		t.Helper()
		i := strings.Index(before, anchor+"\n")
		if i < 0 {
			t.Fatalf("anchor %q not in the file", anchor)
		}
		at := i + len(anchor) + 1
		want := before[:at] + strings.Join(lines, "\n") + "\n" + before[at:]
		if after != want {
			t.Errorf("file:\n%s\nwant:\n%s", after, want)
		}
	}
}

// removed checks that after is before without text.
func removed(text string) func(t *testing.T, before, after string) {
	return func(t *testing.T, before, after string) {
		t.Helper()
		if strings.Count(before, text) != 1 {
			t.Fatalf("%q is not once in the file", text)
		}
		if want := strings.Replace(before, text, "", 1); after != want {
			t.Errorf("file:\n%s\nwant:\n%s", after, want)
		}
	}
}

func TestAddNetwork(t *testing.T) {
	runEditTests(t, []editTest{
		{name: "allocated", args: []string{"add-network", "--file", "F", "--name", "billing"},
			out:   "billing prefix 10.77.0.0/24\n",
			check: inserted("  monitoring: {prefix: 10.77.2.0/24}", "  billing:    {prefix: 10.77.0.0/24}")},
		{name: "allocated /20", args: []string{"add-network", "--file", "F", "--name", "billing", "--bits", "20"},
			out:   "billing prefix 10.77.16.0/20\n",
			check: inserted("  monitoring: {prefix: 10.77.2.0/24}", "  billing:    {prefix: 10.77.16.0/20}")},
		{name: "given prefix", args: []string{"add-network", "--file", "F", "--name", "billing", "--prefix", "10.77.9.0/24"},
			out:   "billing prefix 10.77.9.0/24\n",
			check: inserted("  monitoring: {prefix: 10.77.2.0/24}", "  billing:    {prefix: 10.77.9.0/24}")},
		{name: "duplicate", args: []string{"add-network", "--file", "F", "--name", "payments"}, code: 1,
			err: "overlayctl add-network: F not changed: network payments already exists (line 9)\n", lines: 1},
		{name: "overlapping", args: []string{"add-network", "--file", "F", "--name", "billing", "--prefix", "10.77.1.128/25"}, code: 1,
			err: "overlaps network payments", lines: 2},
		{name: "outside the overlay", args: []string{"add-network", "--file", "F", "--name", "billing", "--prefix", "10.78.0.0/24"}, code: 1,
			err: "F:11: networks.billing.prefix: 10.78.0.0/24 is outside overlay.prefix 10.77.0.0/16\noverlayctl add-network: F not changed: the result would be invalid", lines: 2},
		{name: "bad name", args: []string{"add-network", "--file", "F", "--name", "bill ing"}, code: 2,
			err: "overlayctl add-network: --name: \"bill ing\" contains ' '", lines: 1},
		{name: "bad prefix", args: []string{"add-network", "--file", "F", "--name", "b", "--prefix", "10.77.0.0"}, code: 2,
			err: "--prefix \"10.77.0.0\" is not a prefix", lines: 1},
		{name: "no /8 left", args: []string{"add-network", "--file", "F", "--name", "b", "--bits", "8"}, code: 1,
			err: "F not changed: /8 does not fit in overlay 10.77.0.0/16", lines: 1},
		{name: "missing file", file: "-", args: []string{"add-network", "--file", "F.missing", "--name", "b"}, code: 1,
			err: "F.missing not changed: open F.missing: no such file or directory", lines: 1},
		{name: "invalid file", file: "overlay: {prefix: 10.77.0.0/16}\nnetworks:\n  a: {prefix: 10.99.0.0/24}\n",
			args: []string{"add-network", "--file", "F", "--name", "b"}, code: 1,
			err: "F:3: networks.a.prefix: 10.99.0.0/24 is outside overlay.prefix 10.77.0.0/16\noverlayctl add-network: F not changed: it is invalid as it is; fix it first (overlayctl check --file F)\n", lines: 2},
	})
}

func TestAddPeer(t *testing.T) {
	add := func(extra ...string) []string {
		return append([]string{"add-peer", "--file", "F", "--name", "pay-3", "--network", "payments", "--public-key", keyNew}, extra...)
	}
	runEditTests(t, []editTest{
		{name: "allocated", args: add(), out: "pay-3 address 10.77.1.3 face 127.77.1.3\n",
			check: inserted("    expose: [9100-9199]", "", "  pay-3:", "    network: payments", "    public_key: "+keyNew, "    address: 10.77.1.3")},
		{name: "everything", args: add("--address", "10.77.1.200", "--endpoint", "[2001:db8::1]:51000", "--keepalive", "90s", "--expose", "8080, 9000-9009"),
			out: "pay-3 address 10.77.1.200 face 127.77.1.200\n",
			check: inserted("    expose: [9100-9199]", "", "  pay-3:", "    network: payments", "    public_key: "+keyNew,
				"    address: 10.77.1.200", `    endpoint: "[2001:db8::1]:51000"`, "    keepalive: 1m30s", "    expose: [8080, 9000-9009]")},
		{name: "key with whitespace", args: []string{"add-peer", "--file", "F", "--name", "mon-2", "--network", "monitoring", "--public-key", " " + keyNew + "\n"},
			out:   "mon-2 address 10.77.2.2 face 127.77.2.2\n",
			check: inserted("    expose: [9100-9199]", "", "  mon-2:", "    network: monitoring", "    public_key: "+keyNew, "    address: 10.77.2.2")},
		{name: "unknown network", args: []string{"add-peer", "--file", "F", "--name", "x", "--network", "billing", "--public-key", keyNew}, code: 1,
			err: "overlayctl add-peer: F not changed: no network billing (add it with overlayctl add-network)\n", lines: 1},
		{name: "duplicate name", args: []string{"add-peer", "--file", "F", "--name", "pay-2", "--network", "payments", "--public-key", keyNew}, code: 1,
			err: "F not changed: peer pay-2 already exists (line 30)", lines: 1},
		{name: "duplicate key", args: []string{"add-peer", "--file", "F", "--name", "pay-3", "--network", "payments", "--public-key", keyPay1}, code: 1,
			err: "peers.pay-3.public_key: same key as peer pay-1 (line 22)\noverlayctl add-peer: F not changed: the result would be invalid", lines: 2},
		{name: "address taken", args: add("--address", "10.77.1.2"), code: 1,
			err: "peers.pay-3.address: 10.77.1.2 is already the address of peer pay-2", lines: 2},
		{name: "address outside", args: add("--address", "10.77.2.9"), code: 1,
			err: "peers.pay-3.address: 10.77.2.9 is outside network payments (10.77.1.0/24)", lines: 2},
		{name: "bad endpoint", args: add("--endpoint", "a b:1"), code: 1,
			err: "peers.pay-3.endpoint", lines: 2},
		{name: "bad keepalive", args: add("--keepalive", "1500ms"), code: 1,
			err: "not a whole number of seconds", lines: 2},
		{name: "bad key", args: []string{"add-peer", "--file", "F", "--name", "x", "--network", "payments", "--public-key", "abc"}, code: 2,
			err: "overlayctl add-peer: --public-key: ", lines: 1},
		{name: "bad address", args: add("--address", "10.77.1"), code: 2,
			err: "--address \"10.77.1\" is not an IP address", lines: 1},
		{name: "bad expose", args: add("--expose", "80,http"), code: 2,
			err: "--expose: \"http\" is not a port number", lines: 1},
		{name: "bad name", args: []string{"add-peer", "--file", "F", "--name", "-x", "--network", "payments", "--public-key", keyNew}, code: 2,
			err: "--name: \"-x\" starts or ends with '-'", lines: 1},
		{name: "network full", file: strings.Replace(fixture, "10.77.2.0/24", "10.77.2.0/30", 1) + "  mon-2:\n    network: monitoring\n    public_key: " + keyNew + "\n    address: 10.77.2.2\n",
			args: []string{"add-peer", "--file", "F", "--name", "mon-3", "--network", "monitoring", "--public-key", "XasIfmJKikt54X+Lg4AO5m87sSkmGLb9HC+LJ/+I4Os="}, code: 1,
			err: "F not changed: network monitoring (10.77.2.0/30) has no free address", lines: 1},
		{name: "reload fails after writing", args: add("--reload", "--control", "F.nosocket"), code: 1,
			out: "pay-3 address 10.77.1.3 face 127.77.1.3\n",
			err: "overlayctl add-peer: F was written, but the reload failed: connect to overlayd at F.nosocket", lines: 1,
			check: inserted("    expose: [9100-9199]", "", "  pay-3:", "    network: payments", "    public_key: "+keyNew, "    address: 10.77.1.3")},
	})
}

func TestRemovePeer(t *testing.T) {
	runEditTests(t, []editTest{
		{name: "with its comment", args: []string{"remove-peer", "--file", "F", "--name", "pay-2"},
			out:   "removed pay-2 (address 10.77.1.2)\n",
			check: removed("  # behind NAT\n  pay-2:\n    network: payments\n    public_key: " + keyPay2 + "\n    address: 10.77.1.2\n\n")},
		{name: "any case", args: []string{"remove-peer", "--file", "F", "--name", "PAY-2"},
			out:   "removed pay-2 (address 10.77.1.2)\n",
			check: removed("  # behind NAT\n  pay-2:\n    network: payments\n    public_key: " + keyPay2 + "\n    address: 10.77.1.2\n\n")},
		{name: "missing", args: []string{"remove-peer", "--file", "F", "--name", "pay-9"}, code: 1,
			err: "overlayctl remove-peer: F not changed: peer pay-9 not found\n", lines: 1},
		{name: "named by a test", args: []string{"remove-peer", "--file", "F", "--name", "mon-1"}, code: 1,
			err: "tests[0].from: unknown peer \"mon-1\"\noverlayctl remove-peer: F not changed: the result would be invalid (line numbers are those of the edited file); mon-1 is still named by the test at line 19 (in the file as it is): remove those first\n", lines: 2},
		{name: "named by a rule", file: strings.Replace(fixture, "  - from: monitoring\n", "  - between: [pay-2, mon-1]\n  - from: monitoring\n", 1),
			args: []string{"remove-peer", "--file", "F", "--name", "pay-2"}, code: 1,
			err: "pay-2 is still named by the rule at line 14 (in the file as it is): remove those first", lines: 2},
		{name: "reload fails after writing", args: []string{"remove-peer", "--file", "F", "--name", "pay-2", "--reload", "--control", "F.nosocket"}, code: 1,
			out:   "removed pay-2 (address 10.77.1.2)\n",
			err:   "overlayctl remove-peer: F was written, but the reload failed: ",
			check: removed("  # behind NAT\n  pay-2:\n    network: payments\n    public_key: " + keyPay2 + "\n    address: 10.77.1.2\n\n")},
	})
}

func TestAllow(t *testing.T) {
	// Lines are those of the written file: line 17 of the edit, plus the
	// serial: 1 line the edit inserted near the top.
	runEditTests(t, []editTest{
		{name: "from to", args: []string{"allow", "--file", "F", "--from", "payments", "--to", "mon-1", "--ports", "9100-9199, 4369"},
			out:   "added rule F:18 (payments -> mon-1 ports [9100-9199, 4369])\n",
			check: inserted("    ports: [erlang]", "  - from: payments", "    to: mon-1", "    ports: [9100-9199, 4369]")},
		{name: "between all ports", args: []string{"allow", "--file", "F", "--between", "pay-2,mon-1"},
			out:   "added rule F:18 (pay-2 <-> mon-1 ports all)\n",
			check: inserted("    ports: [erlang]", "  - between: [pay-2, mon-1]")},
		{name: "ports all", args: []string{"allow", "--file", "F", "--from", "pay-1", "--to", "monitoring", "--ports", "all"},
			out:   "added rule F:18 (pay-1 -> monitoring ports all)\n",
			check: inserted("    ports: [erlang]", "  - from: pay-1", "    to: monitoring")},
		{name: "unknown name", args: []string{"allow", "--file", "F", "--from", "billing", "--to", "payments"}, code: 1,
			err: "F:17: interconnect[1].from: unknown network or peer \"billing\"\noverlayctl allow: F not changed: the result would be invalid", lines: 2},
		{name: "breaks a test", args: []string{"allow", "--file", "F", "--from", "payments", "--to", "monitoring"},
			file: strings.Replace(fixture, "expect: allow}", "expect: allow}\n  - {from: pay-1, to: mon-1, port: 4369, expect: deny}", 1), code: 1,
			err: "pay-1 -> mon-1 port 4369: expected deny, got allow", lines: 2},
		{name: "both forms", args: []string{"allow", "--file", "F", "--from", "a", "--between", "a,b"}, code: 2,
			err: "overlayctl allow: use either --from and --to, or --between", lines: 1},
		{name: "no to", args: []string{"allow", "--file", "F", "--from", "a"}, code: 2,
			err: "overlayctl allow: give --from and --to, or --between", lines: 1},
		{name: "between one", args: []string{"allow", "--file", "F", "--between", "a"}, code: 2,
			err: "--between takes two names, A,B", lines: 1},
		{name: "bad port", args: []string{"allow", "--file", "F", "--from", "a", "--to", "b", "--ports", "erlang,99999"}, code: 2,
			err: "--ports: 99999 is not a port (1-65535)", lines: 1},
		{name: "empty ports", args: []string{"allow", "--file", "F", "--from", "a", "--to", "b", "--ports", ","}, code: 2,
			err: "--ports is empty", lines: 1},
	})
}

// TestReloadAfterEdit runs --reload against a fake overlayd.
func TestReloadAfterEdit(t *testing.T) {
	dir, err := os.MkdirTemp("", "ovc") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reloads := make(chan string, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			var req struct{ Op string }
			json.Unmarshal([]byte(line), &req)
			reloads <- req.Op
			c.Write([]byte(`{"ok":true}` + "\n"))
			c.Close()
		}
	}()
	path := writeFixture(t, fixture)
	r := runCmd("", "add-peer", "--file", path, "--name", "pay-3", "--network", "payments", "--public-key", keyNew, "--reload", "--control", sock)
	if r.code != exitOK || r.stderr != "" || r.stdout != "pay-3 address 10.77.1.3 face 127.77.1.3\n" {
		t.Fatalf("add-peer --reload: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if op := <-reloads; op != "reload" {
		t.Errorf("daemon got op %q", op)
	}
	// A refused edit does not bother the daemon.
	r = runCmd("", "remove-peer", "--file", path, "--name", "nobody", "--reload", "--control", sock)
	if r.code != exitFailed {
		t.Fatalf("remove-peer of nobody: code %d", r.code)
	}
	select {
	case op := <-reloads:
		t.Errorf("daemon asked to %s after a failed edit", op)
	default:
	}
}

func TestInit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "peers.yaml")
	r := runCmd("", "init", "--file", path, "--prefix", "10.77.0.0/16")
	if r.code != exitOK || r.stderr != "" || r.stdout != "wrote "+path+" (overlay 10.77.0.0/16, faces 127.77.0.0/16, port 51820)\n" {
		t.Fatalf("init: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	text := readFile(t, path)
	f, err := peers.Parse(path, []byte(text))
	if err != nil {
		t.Fatalf("init wrote an invalid file: %v\n%s", err, text)
	}
	if f.Overlay.Faces.String() != "127.77.0.0/16" || f.Overlay.Port != 51820 || len(f.Peers)+len(f.Networks)+len(f.Rules)+len(f.Tests) != 0 {
		t.Errorf("init wrote %+v", f.Overlay)
	}
	for _, want := range []string{"# - from: monitoring", "# - between: [", "#   address: 10.77.0.1", "(10.77.0.1 -> 127.77.0.1)"} {
		if !strings.Contains(text, want) {
			t.Errorf("init's file lacks %q", want)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != filePerm {
		t.Errorf("mode %v", fi.Mode())
	}

	// The documented workflow on the new file keeps its comments and ends
	// valid.
	for _, args := range [][]string{
		{"add-network", "--file", path, "--name", "payments"},
		{"add-network", "--file", path, "--name", "monitoring"},
		{"add-peer", "--file", path, "--name", "pay-1", "--network", "payments", "--public-key", keyPay1, "--endpoint", "pay-1.example.net"},
		{"add-peer", "--file", path, "--name", "mon-1", "--network", "monitoring", "--public-key", keyMon1, "--keepalive", "25s"},
		{"allow", "--file", path, "--from", "monitoring", "--to", "payments", "--ports", "erlang"},
		{"check", "--file", path},
		{"explain", "--file", path, "mon-1", "pay-1"},
	} {
		if r := runCmd("", args...); r.code != exitOK {
			t.Fatalf("%q: code %d, stderr %q", args, r.code, r.stderr)
		}
	}
	final := readFile(t, path)
	for _, l := range strings.SplitAfter(text, "\n") {
		if !strings.Contains(final, l) {
			t.Errorf("line %q of init's file is gone", l)
		}
	}
	want := "  # monitoring: {prefix: 10.77.1.0/24}\n  payments: {prefix: 10.77.0.0/24}\n  monitoring: {prefix: 10.77.1.0/24}\n"
	if !strings.Contains(final, want) {
		t.Errorf("networks section:\n%s", final)
	}

	// Never overwrites.
	r = runCmd("", "init", "--file", path, "--prefix", "10.88.0.0/16")
	if r.code != exitFailed || r.stderr != "overlayctl init: "+path+" already exists; not overwriting it\n" {
		t.Errorf("init over a file: code %d, stderr %q", r.code, r.stderr)
	}
	if readFile(t, path) != final {
		t.Error("init changed an existing file")
	}
}

func TestInitFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
		err  string
	}{
		{[]string{"--prefix", "192.168.0.0/16", "--port", "4000"}, 0, "(overlay 192.168.0.0/16, faces 127.168.0.0/16, port 4000)\n", ""},
		{[]string{"--prefix", "10.77.64.0/18", "--faces", "127.200.0.0/18"}, 0, "(overlay 10.77.64.0/18, faces 127.200.0.0/18, port 51820)\n", ""},
		{[]string{"--prefix", "10.77.5.0/24"}, 0, "(overlay 10.77.5.0/24, faces 127.77.5.0/24, port 51820)\n", ""},
		{[]string{"--prefix", "10.0.0.0/7"}, 2, "", "overlayctl init: --prefix 10.0.0.0/7 is shorter than /8: pass --faces"},
		{[]string{"--prefix", "10.77.1.0/16"}, 2, "", "--prefix 10.77.1.0/16 is not canonical; use 10.77.0.0/16"},
		{[]string{"--prefix", "fd00::/64"}, 2, "", "--prefix \"fd00::/64\" is not an IPv4 prefix"},
		{[]string{"--prefix", "10.77.0.0/16", "--faces", "x"}, 2, "", "--faces \"x\" is not an IPv4 prefix"},
		{[]string{"--prefix", "10.77.0.0/16", "--port", "70000"}, 2, "", "--port 70000 is not a port"},
		{[]string{"--prefix", "10.77.0.0/16", "--faces", "127.77.0.0/24"}, 1, "", "overlay.faces: 127.77.0.0/24 must have the same length as overlay.prefix (/16)"},
		{[]string{"--prefix", "127.1.0.0/16"}, 1, "", "overlaps 127.0.0.0/8"},
	} {
		path := filepath.Join(t.TempDir(), "p.yaml")
		r := runCmd("", append([]string{"init", "--file", path}, tc.args...)...)
		if r.code != tc.code || !strings.HasSuffix(r.stdout, tc.out) || !strings.Contains(r.stderr, tc.err) || (tc.err == "") != (r.stderr == "") {
			t.Errorf("init %q: code %d, stdout %q, stderr %q", tc.args, r.code, r.stdout, r.stderr)
		}
		_, statErr := os.Stat(path)
		if (tc.code == 0) != (statErr == nil) {
			t.Errorf("init %q: file exists: %v", tc.args, statErr == nil)
		}
		if tc.code == 0 {
			if _, err := peers.Load(path); err != nil {
				t.Errorf("init %q wrote an invalid file: %v", tc.args, err)
			}
		}
	}
}

func TestMentions(t *testing.T) {
	text := strings.Replace(fixture, "  - from: monitoring\n", "  - between: [pay-1, mon-1]\n  - from: mon-1\n    to: pay-1\n  - from: monitoring\n", 1)
	text = strings.Replace(text, "expect: allow}", "expect: allow}\n  - {from: pay-1, to: mon-1, port: 4369, expect: allow}", 1)
	f, err := peers.Parse("p.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	for peer, want := range map[string]string{
		"mon-1": "mon-1 is still named by the rules at lines 14, 15 and the tests at lines 22, 23 (in the file as it is): remove those first",
		"pay-2": "",
	} {
		if got := mentions(f, peer); got != want {
			t.Errorf("mentions(%s) = %q, want %q", peer, got, want)
		}
	}
}
