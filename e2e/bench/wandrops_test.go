package main

import (
	"maps"
	"os"
	"testing"
)

// TestParsePathCounters reads a host's counters as samplePath gets them
// (testdata/pathcounters.txt: /proc/net/snmp and /proc/net/netstat of a
// namespace, eth0's drops and an overlayd scrape, trimmed) and checks the
// difference of two samples.
func TestParsePathCounters(t *testing.T) {
	b, err := os.ReadFile("testdata/pathcounters.txt")
	if err != nil {
		t.Fatal(err)
	}
	got := parsePathCounters(string(b))
	want := pathCounters{
		"udp_rcvbuferrors": 7, "udp_inerrors": 9, "tcp_retranssegs": 44,
		"tcpext_prunecalled": 5, "tcpext_tcplossprobes": 58, "tcpext_tcpbacklogdrop": 0, "tcpext_tcprcvqdrop": 2,
		"tcpext_tcpzerowindowdrop": 0, "tcpext_tcpofodrop": 0, "tcpext_tcptimeouts": 3, "tcpext_tcpspuriousrtos": 1,
		"tcpext_tcptozerowindowadv": 57, "tcpext_tcpwantzerowindowadv": 207,
		"eth0_rx_dropped": 1,
		"wg_udp_drops":    12, "stack_drops": 3, "link_full": 0, "stack_retrans": 91, "stack_rto": 1,
		"stack_fastrec": 2, "stack_tlp": 4, "stack_spurious": 0, "stack_spurious_rto": 0,
	}
	if !maps.Equal(got, want) {
		t.Errorf("parsed\n%v\nwant\n%v", got, want)
	}
	if n := len(parsePathCounters("curl: (7) Failed to connect\n")); n != 0 {
		t.Errorf("no counters in an error: got %d", n)
	}

	later := maps.Clone(got)
	later["wg_udp_drops"] += 5
	later["stack_rto"] += 2
	d := pathSample{a: later, b: got, softnet: 10}.since(pathSample{a: got, b: got, softnet: 4})
	if w := map[string]uint64{"a.wg_udp_drops": 5, "a.stack_rto": 2, "softnet": 6}; !maps.Equal(d, w) {
		t.Errorf("since: got %v, want %v", d, w)
	}
	if s := formatDrops(d); s != "a.stack_rto=2 a.wg_udp_drops=5 softnet=6" {
		t.Errorf("formatDrops: %q", s)
	}
}
