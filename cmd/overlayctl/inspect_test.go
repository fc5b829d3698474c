package main

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	path := writeFixture(t, fixture)
	r := runCmd("", "check", "--file", path)
	if r.code != exitOK || r.stderr != "" || r.stdout != path+": ok (3 peers, 2 networks, 1 rules, 1 tests)\n" {
		t.Errorf("check: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	bad := strings.Replace(fixture, "address: 10.77.1.2", "address: 10.77.2.9", 1)
	bad = strings.Replace(bad, "expect: allow", "expect: deny", 1)
	path = writeFixture(t, bad)
	r = runCmd("", "check", "--file", path)
	want := "overlayctl check: " + path + ":19: tests[0]: mon-1 -> pay-1 port 4369: expected deny, got allow (rule " + path + ":14)\n" +
		"overlayctl check: " + path + ":33: peers.pay-2.address: 10.77.2.9 is outside network payments (10.77.1.0/24)\n" +
		"overlayctl check: " + path + ": 2 errors\n"
	if r.code != exitFailed || r.stdout != "" || r.stderr != want {
		t.Errorf("check of a bad file: code %d, stdout %q\nstderr %q\nwant   %q", r.code, r.stdout, r.stderr, want)
	}

	r = runCmd("", "check", "--file", path+".missing")
	if r.code != exitFailed || !strings.HasPrefix(r.stderr, "overlayctl check: open "+path+".missing: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("check of a missing file: code %d, stderr %q", r.code, r.stderr)
	}
}

func TestExplain(t *testing.T) {
	path := writeFixture(t, fixture)
	for _, tc := range []struct {
		args []string
		code int
		out  string // exact stdout
		err  string // stderr contains
	}{
		{[]string{"mon-1", "pay-1"}, 0, "allow rule " + path + ":14 (monitoring -> payments ports [erlang])\n", ""},
		{[]string{"mon-1", "pay-1", "4369"}, 0, "allow rule " + path + ":14 (monitoring -> payments ports [erlang])\n", ""},
		{[]string{"mon-1", "pay-1", "45000"}, 0, "deny default (no rule allows monitoring -> payments port 45000)\n", ""},
		{[]string{"--erlang", "mon-1", "pay-1", "45000"}, 0, "allow rule " + path + ":14 (monitoring -> payments ports [erlang])\n", ""},
		{[]string{"pay-1", "mon-1"}, 0, "deny default (no rule allows payments -> monitoring port 4369)\n", ""},
		{[]string{"pay-1", "pay-2", "22"}, 0, "allow same network payments\n", ""},
		{[]string{"pay-1", "Pay-1"}, 0, "allow self pay-1\n", ""},
		{[]string{"pay-1", "nobody"}, 1, "", "overlayctl explain: no peer nobody in " + path + "\n"},
		{[]string{"payments", "pay-1"}, 1, "", "no peer payments in " + path + " (payments is a network; explain takes peers)\n"},
		{[]string{"pay-1", "pay-2", "0"}, 2, "", "overlayctl explain: PORT \"0\" is not a port (1-65535)"},
		{[]string{"pay-1", "pay-2", "http"}, 2, "", "PORT \"http\" is not a port"},
	} {
		args := append([]string{"explain", "--file", path}, tc.args...)
		r := runCmd("", args...)
		if r.code != tc.code || r.stdout != tc.out || !strings.Contains(r.stderr, tc.err) || (tc.err == "") != (r.stderr == "") {
			t.Errorf("explain %q: code %d\nstdout %q\nstderr %q", tc.args, r.code, r.stdout, r.stderr)
		}
	}
	// Flags may follow the peers.
	r := runCmd("", "explain", "mon-1", "pay-1", "--file", path)
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "allow rule ") {
		t.Errorf("explain with --file last: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// An invalid file is reported, not explained.
	bad := writeFixture(t, strings.Replace(fixture, "address: 10.77.1.2", "address: 10.77.2.9", 1))
	r = runCmd("", "explain", "--file", bad, "mon-1", "pay-1")
	if r.code != exitFailed || r.stdout != "" || !strings.Contains(r.stderr, "overlayctl explain: "+bad+":33: peers.pay-2.address") {
		t.Errorf("explain on an invalid file: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestShow(t *testing.T) {
	path := writeFixture(t, fixture)
	epmd := func(face, tuple string) string {
		return "\n# Erlang on this host (userspace mode): epmd and nodes listen on the face only.\n" +
			"export ERL_EPMD_ADDRESS=" + face + "\n" +
			"erl -name app@" + face + " -kernel inet_dist_use_interface '" + tuple + "'\n" +
			"# If systemd's epmd.socket is enabled, it holds the wildcard on 4369 and no\n" +
			"# face can bind it: add a drop-in (configs/epmd.socket.d/nodewire.conf) with\n" +
			"# ListenStream= then ListenStream=127.0.0.1:4369 and ListenStream=" + face + ":4369,\n" +
			"# or disable it (systemctl disable --now epmd.socket).\n"
	}
	names := func(peer string) string {
		return "\n# Or name nodes by peer name, the same on every host (userspace and TUN alike):\n" +
			"#   overlayctl erl-inetrc --file " + path + " --self " + peer + " > /etc/nodewire/inetrc\n" +
			"#   (or overlayd --inetrc /etc/nodewire/inetrc keeps it current on reload)\n" +
			"#   export ERL_INETRC=/etc/nodewire/inetrc\n" +
			"#   erl -name app@" + peer + ".nodewire ... (flags as above)\n"
	}
	for _, tc := range []struct {
		name string
		code int
		out  string
		err  string
	}{
		{"pay-1", 0, "peer      pay-1\nnetwork   payments\naddress   10.77.1.1\nface      127.77.1.1\nendpoint  pay-1.example.net:51820\nkeepalive 25s\n" +
			epmd("127.77.1.1", "{127,77,1,1}") + names("pay-1"), ""},
		{"pay-2", 0, "peer      pay-2\nnetwork   payments\naddress   10.77.1.2\nface      127.77.1.2\nendpoint  none (behind NAT: it dials out)\n" +
			epmd("127.77.1.2", "{127,77,1,2}") + names("pay-2"), ""},
		{"mon-1", 0, "peer      mon-1\nnetwork   monitoring\naddress   10.77.2.1\nface      127.77.2.1\nendpoint  none (behind NAT: it dials out)\nexpose    9100-9199\n" +
			epmd("127.77.2.1", "{127,77,2,1}") + names("mon-1"), ""},
		{"nobody", 1, "", "overlayctl show: no peer nobody in " + path + "\n"},
	} {
		r := runCmd("", "show", "--file", path, tc.name)
		if r.code != tc.code || r.stdout != tc.out || r.stderr != tc.err {
			t.Errorf("show %s: code %d\nstdout %q\nwant   %q\nstderr %q", tc.name, r.code, r.stdout, tc.out, r.stderr)
		}
	}
}
