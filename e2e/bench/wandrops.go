package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The drops a cell did not ask for. The wire reports its own (rx_drops,
// tail_drops); these are the ones past it, on each row host: the kernel's
// UDP and TCP counters of the host's namespace, its eth0's receive drops,
// and overlayd's own counters (metrics: UDP socket drops, the userspace
// stack's drops and retransmissions). measureWAN's caller samples them
// around each row's turn and logs what moved, so a collapse in a cell
// shows where the packets went.

// wanMetricsAddr is where every nodewire row's overlayd serves metrics in
// the matrix, inside its own host namespace.
const wanMetricsAddr = "127.0.0.1:9109"

// wanDaemonArgs turns metrics on for the drop counters.
func wanDaemonArgs(string) []string { return []string{"--metrics", wanMetricsAddr} }

// pathCounters are one host's counters, by name.
type pathCounters map[string]uint64

// overlaydCounters are the metrics samples read, by the name logged.
var overlaydCounters = map[string]string{
	"nodewire_udp_receive_drops_total":                             "wg_udp_drops",
	`nodewire_stack_dropped_packets_total{where="stack"}`:          "stack_drops",
	`nodewire_stack_dropped_packets_total{where="link"}`:           "link_full",
	`nodewire_stack_tcp_retransmits_total{kind="segment"}`:         "stack_retrans",
	`nodewire_stack_tcp_retransmits_total{kind="timeout"}`:         "stack_rto",
	`nodewire_stack_tcp_recoveries_total{kind="fast"}`:             "stack_fastrec",
	`nodewire_stack_tcp_recoveries_total{kind="tlp"}`:              "stack_tlp",
	`nodewire_stack_tcp_recoveries_total{kind="spurious"}`:         "stack_spurious",
	`nodewire_stack_tcp_recoveries_total{kind="spurious_timeout"}`: "stack_spurious_rto",
}

// samplePath reads a host namespace's counters. What cannot be read
// (plain rows have no overlayd) is left out.
func samplePath(ns string) pathCounters {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "sh", "-c",
		"cat /proc/net/snmp /proc/net/netstat; echo eth0_rx_dropped $(cat /sys/class/net/eth0/statistics/rx_dropped); curl -s -m 3 http://"+wanMetricsAddr+"/metrics").Output()
	if err != nil && len(out) == 0 {
		return pathCounters{}
	}
	return parsePathCounters(string(out))
}

// parsePathCounters picks the counters out of /proc/net/snmp and
// /proc/net/netstat (a header line, then a value line, per protocol), an
// "eth0_rx_dropped N" line and overlayd's metrics text.
func parsePathCounters(out string) pathCounters {
	pc := pathCounters{}
	snmp := map[string][]string{} // "Udp" -> header, then values
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if proto, ok := strings.CutSuffix(f[0], ":"); ok {
			if hdr, seen := snmp[proto]; seen && len(hdr) == len(f) {
				for i := 1; i < len(f); i++ {
					switch k := proto + "." + hdr[i]; k {
					case "Udp.RcvbufErrors", "Udp.InErrors", "Tcp.RetransSegs",
						// The kernel TCP of the host (plain rows' distribution; the
						// loopback hop between erl and overlayd in nodewire rows):
						// drops at its receive queue, and how it recovered.
						"TcpExt.TCPBacklogDrop", "TcpExt.TCPRcvQDrop", "TcpExt.TCPZeroWindowDrop", "TcpExt.TCPOFODrop",
						"TcpExt.PruneCalled", "TcpExt.TCPLossProbes", "TcpExt.TCPTimeouts", "TcpExt.TCPSpuriousRTOs",
						"TcpExt.TCPToZeroWindowAdv", "TcpExt.TCPWantZeroWindowAdv":
						v, _ := strconv.ParseUint(f[i], 10, 64)
						pc[strings.ToLower(strings.ReplaceAll(k, ".", "_"))] = v
					}
				}
			} else {
				snmp[proto] = f
			}
			continue
		}
		if f[0] == "eth0_rx_dropped" {
			pc["eth0_rx_dropped"], _ = strconv.ParseUint(f[1], 10, 64)
			continue
		}
		if name, ok := overlaydCounters[f[0]]; ok {
			v, _ := strconv.ParseFloat(f[1], 64)
			pc[name] = uint64(v)
		}
	}
	return pc
}

// softnetDrops is the kernel's backlog drops, all CPUs (not per
// namespace): frames a veth handed on while netdev_max_backlog was full.
func softnetDrops() uint64 {
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return 0
	}
	var n uint64
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			v, _ := strconv.ParseUint(f[1], 16, 64)
			n += v
		}
	}
	return n
}

// pathSample is every counter of a row's turn: both hosts and the
// machine's backlog.
type pathSample struct {
	a, b    pathCounters
	softnet uint64
}

func samplePair(p *Pair) pathSample {
	return pathSample{a: samplePath(p.A.Host.NS), b: samplePath(p.B.Host.NS), softnet: softnetDrops()}
}

// since is what moved from s0 to s, as "a.name" and "b.name" (a sends the
// bulk), plus "softnet"; counters that did not move are left out.
func (s pathSample) since(s0 pathSample) map[string]uint64 {
	d := map[string]uint64{}
	for _, side := range []struct {
		name  string
		c, c0 pathCounters
	}{{"a", s.a, s0.a}, {"b", s.b, s0.b}} {
		for k, v := range side.c {
			if v0, ok := side.c0[k]; ok && v > v0 {
				d[side.name+"."+k] = v - v0
			}
		}
	}
	if s.softnet > s0.softnet {
		d["softnet"] = s.softnet - s0.softnet
	}
	return d
}

func formatDrops(d map[string]uint64) string {
	if len(d) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(d)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, d[k]))
	}
	return strings.Join(parts, " ")
}
