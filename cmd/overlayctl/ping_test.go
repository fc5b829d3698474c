package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodewire/nodewire/overlay/control"
)

// fakeControl serves overlayd's control protocol on a unix socket: each
// ping request is answered by answer(seq) (a JSON response line). It
// returns the socket's path.
func fakeControl(t *testing.T, answer func(seq int) string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var req struct {
				Op  string `json:"op"`
				To  string `json:"to"`
				Seq int    `json:"seq"`
			}
			line, _ := bufio.NewReader(c).ReadBytes('\n')
			if err := json.Unmarshal(line, &req); err != nil || req.Op != "ping" || req.To != "mon-1" {
				fmt.Fprintf(c, `{"ok":false,"error":"unexpected request %q"}`+"\n", line)
			} else {
				fmt.Fprintln(c, answer(req.Seq))
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return path
}

func pingReply(seq int, replied bool, rttNS int) string {
	return fmt.Sprintf(`{"ok":true,"ping":{"from":"pay-1","from_address":"10.77.1.1","peer":"mon-1","address":"10.77.2.1",`+
		`"seq":%d,"bytes":64,"replied":%v,"rtt_ns":%d,"timeout_ns":2000000000}}`, seq, replied, rttNS)
}

func TestPing(t *testing.T) {
	header := "PING mon-1 (10.77.2.1) from pay-1 (10.77.1.1) through the overlay: 56 data bytes\n"
	for _, tc := range []struct {
		name   string
		args   []string
		answer func(seq int) string
		code   int
		stdout string
		stderr string
	}{
		{"every reply", []string{"-c", "2"}, func(seq int) string { return pingReply(seq, true, 500000*seq) }, 0,
			header +
				"64 bytes from mon-1 (10.77.2.1): icmp_seq=1 time=0.500 ms\n" +
				"64 bytes from mon-1 (10.77.2.1): icmp_seq=2 time=1.000 ms\n" +
				"\n--- mon-1 ping statistics ---\n2 packets transmitted, 2 received, 0% packet loss\nrtt min/avg/max = 0.500/0.750/1.000 ms\n", ""},
		{"one lost", []string{"-c", "2"}, func(seq int) string { return pingReply(seq, seq == 2, 250000) }, 0,
			header +
				"64 bytes from mon-1 (10.77.2.1): icmp_seq=2 time=0.250 ms\n" +
				"\n--- mon-1 ping statistics ---\n2 packets transmitted, 1 received, 50% packet loss\nrtt min/avg/max = 0.250/0.250/0.250 ms\n", ""},
		{"no reply", []string{"-c", "1"}, func(seq int) string { return pingReply(seq, false, 0) }, 1,
			"", "overlayctl ping: no reply from mon-1 (10.77.2.1) within 2s\n"},
		{"no reply to several", []string{"-c", "3"}, func(seq int) string { return pingReply(seq, false, 0) }, 1,
			"", "overlayctl ping: no reply from mon-1 (10.77.2.1) to 3 echo requests, each given 2s\n"},
		{"denied", nil, func(int) string {
			return `{"ok":false,"error":"pay-1 may not ping mon-1: deny default (no rule allows payments -> monitoring on any port, which ping needs)"}`
		}, 1, "", "overlayctl ping: overlayd ping: pay-1 may not ping mon-1: deny default (no rule allows payments -> monitoring on any port, which ping needs)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := fakeControl(t, tc.answer)
			args := append([]string{"ping", "--control", sock, "-i", "0", "mon-1"}, tc.args...)
			r := runCmd("", args...)
			if r.code != tc.code || r.stdout != tc.stdout || r.stderr != tc.stderr {
				t.Errorf("ping: code %d\nstdout %q\nwant   %q\nstderr %q\nwant   %q", r.code, r.stdout, tc.stdout, r.stderr, tc.stderr)
			}
		})
	}
	for _, args := range [][]string{{"ping"}, {"ping", "-c", "0", "mon-1"}, {"ping", "--timeout", "1m", "mon-1"}, {"ping", "a", "b"}} {
		if r := runCmd("", args...); r.code != exitUsage || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: code %d, stderr %q, want a one-line usage error", args, r.code, r.stderr)
		}
	}
}

// A refused ping shows in status as a ping, not as port 0.
func TestStatusShowsRefusedPing(t *testing.T) {
	now := time.Now()
	st := &control.Status{Peers: []control.PeerStatus{{Name: "pay-1", LastRefusal: &control.Refusal{
		At: now, Dir: "in", From: "pay-1", To: "mon-1", Proto: "icmp",
		Decision: "deny default (no rule allows payments -> monitoring on any port, which ping needs)",
	}}}}
	var b strings.Builder
	writeStatusDetails(&b, st, now)
	want := "pay-1: last refused 0s ago: in pay-1 -> mon-1 ping: deny default (no rule allows payments -> monitoring on any port, which ping needs)"
	if !strings.Contains(b.String(), want) {
		t.Errorf("status details:\n%s\nwant a line %q", b.String(), want)
	}
}
