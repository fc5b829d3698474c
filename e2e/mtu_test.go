package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// mtuCell is one underlay: the MTU of both hosts' interfaces, the family of
// the endpoints, and optionally a black hole: interfaces at 1500, but every
// packet longer than hole bytes dropped on the way in, without an ICMP error,
// as a tunnel hop with a smaller MTU does that the route cannot show. (On
// the underlay interface only: loopback carries 64 KiB segments.)
type mtuCell struct {
	name  string
	v6    bool
	ifMTU int
	hole  int
}

var mtuCells = []mtuCell{
	{name: "ipv4 underlay mtu 1400", ifMTU: 1400},
	{name: "ipv4 underlay mtu 1280", ifMTU: 1280},
	{name: "ipv6 underlay mtu 1400", v6: true, ifMTU: 1400},
	{name: "ipv6 underlay mtu 1280", v6: true, ifMTU: 1280},
	{name: "ipv4 black hole at 1400", ifMTU: 1500, hole: 1400},
	{name: "ipv6 black hole at 1400", v6: true, ifMTU: 1500, hole: 1400},
}

// TestUnderlayMTU moves 16 MiB each way between real Erlang nodes through
// nodewire over underlays that cannot carry the default inner MTU of 1420
// (1480/1500-byte datagrams), in userspace and TUN mode, with no --mtu:
// the daemons must derive each peer's path from its route and hold TCP to
// it, and stay under the conservative limit where the route cannot see the
// hop that drops. NODEWIRE_MTU_FLAG=N passes --mtu N to the daemons, to
// show what an override does (--mtu 1420 fails the black holes: that is
// the old behaviour).
func TestUnderlayMTU(t *testing.T) {
	cluster.Require(t)
	var extra []string
	if v := os.Getenv("NODEWIRE_MTU_FLAG"); v != "" {
		if _, err := strconv.Atoi(v); err != nil {
			t.Fatalf("NODEWIRE_MTU_FLAG=%q: want a number", v)
		}
		extra = []string{"--mtu", v}
	}
	for _, mode := range []string{"userspace", "tun"} {
		for i, cell := range mtuCells {
			t.Run(mode+"/"+cell.name, func(t *testing.T) {
				// Each cell is a cluster of its own; two at a time (go test's
				// -parallel) overlap one's start-up with another's transfer.
				t.Parallel()
				start := time.Now()
				a, b := mtuPair(t, mode, cell, fmt.Sprintf("%c%d", mode[0], i), extra)
				for _, dir := range [][2]*cluster.OverlayHost{{a, b}, {b, a}} {
					got, err := dir[0].Node.Eval(ctxFor(t, 2*time.Minute), fmt.Sprintf(
						"B = rand:bytes(16 bsl 20), erpc:call(%s, erlang, md5, [B], 90000) =:= erlang:md5(B)", cluster.Atom(dir[1].Node.Name)))
					if err != nil || got != "true" {
						var nft []byte
						if cell.hole > 0 {
							nft, _ = dir[1].Exec(ctxFor(t, 10*time.Second), "nft", "list", "table", "inet", "nwhole")
						}
						t.Fatalf("16 MiB %s -> %s over %s: %s %v\n%s: %s\n%s", dir[0].Peer, dir[1].Peer, cell.name, got, err,
							dir[0].Peer, dir[0].Daemon.Tail(10), nft)
					}
				}
				if mode == "tun" && cell.hole == 0 {
					// Not TCP, so not clamped: a ping of the full inner MTU
					// makes datagrams larger than the route, which the
					// kernel must fragment (udpbind falls back from GSO).
					must(t, cluster.Poll(ctxFor(t, 20*time.Second), 200*time.Millisecond, func() (bool, error) {
						out, err := a.Exec(ctxFor(t, 10*time.Second), "ping", "-n", "-c", "1", "-W", "1", "-s", "1392", "10.77.1.2")
						return err == nil && strings.Contains(string(out), "1 received"), nil
					}))
				}
				t.Logf("%s, %s: 2 x 16 MiB, same md5, %v in all", mode, cell.name, time.Since(start).Round(time.Millisecond))
			})
		}
	}
}

// mtuPair makes a cluster of two hosts on the cell's underlay, an overlay
// between them in mode (peers TAG-a and TAG-b), and a node on each.
func mtuPair(t *testing.T, mode string, cell mtuCell, tag string, daemonArgs []string) (a, b *cluster.OverlayHost) {
	t.Helper()
	c := cluster.New(t, "mtu")
	o := cluster.NewOverlay(c, t, "10.77.0.0/16")
	_, err := o.Run("add-network", "--file", o.File, "--name", "app", "--prefix", "10.77.1.0/24")
	must(t, err)
	var hosts []*cluster.OverlayHost
	for i, name := range []string{"a", "b"} {
		args := []string{}
		if mode == "tun" {
			args = append(args, "--mode", "tun")
		}
		v6 := fmt.Sprintf("fd77::%d", i+1)
		if cell.v6 {
			args = append(args, "--endpoint", "["+v6+"]:51820") // the last --endpoint wins
		}
		// Peer names unique per cell: they name the UAPI sockets, which
		// all network namespaces share.
		h, err := o.AddPeer(name, tag+"-"+name, "app", args...)
		must(t, err)
		ctx := ctxFor(t, 10*time.Second)
		cmds := [][]string{{"ip", "link", "set", h.Veth, "mtu", strconv.Itoa(cell.ifMTU)}}
		if cell.v6 {
			cmds = append(cmds, []string{"ip", "-6", "addr", "add", v6 + "/64", "dev", h.Veth, "nodad"})
		}
		if cell.hole > 0 {
			// veth passes UDP GSO super-packets whole, so the rule below
			// would see 64 KiB "datagrams" no real wire carries: segment in
			// software before the link, as a NIC does, and keep the
			// receiver from coalescing them again before the rule.
			cmds = append(cmds,
				[]string{"ethtool", "-K", h.Veth, "tx-udp-segmentation", "off", "gro", "off"},
				[]string{"nft", "add", "table", "inet", "nwhole"},
				[]string{"nft", "add", "chain", "inet", "nwhole", "in", "{ type filter hook input priority 0; }"},
				[]string{"nft", "add", "rule", "inet", "nwhole", "in", "iifname", h.Veth, "meta", "length", ">", strconv.Itoa(cell.hole), "counter", "drop"})
		}
		for _, argv := range cmds {
			if out, err := h.Exec(ctx, argv...); err != nil {
				t.Fatalf("%s: %s: %v: %s", name, strings.Join(argv, " "), err, out)
			}
		}
		hosts = append(hosts, h)
	}
	a, b = hosts[0], hosts[1]
	if cell.hole > 0 {
		mtuCheckHole(t, a, b, cell)
	}
	inetrc := func(h *cluster.OverlayHost) string { return filepath.Join(h.Dir, "inetrc") }
	o.DaemonArgs = func(h *cluster.OverlayHost) []string {
		args := append([]string{}, daemonArgs...)
		if mode == "tun" {
			args = append(args, "--mode", "tun", "--inetrc", inetrc(h))
		}
		return args
	}
	for _, h := range hosts {
		must(t, o.StartDaemon(h))
	}
	for _, h := range hosts {
		if mode == "tun" {
			must(t, o.StartErlangNamed(h, inetrc(h)))
		} else {
			must(t, o.StartErlang(h))
		}
	}
	return a, b
}

// mtuCheckHole shows that the black hole is one: a packet that fits it
// crosses, a longer one, which the interface would carry, vanishes without
// an error the sender could learn from.
func mtuCheckHole(t *testing.T, a, b *cluster.OverlayHost, cell mtuCell) {
	t.Helper()
	dst, ipHdr, flag := b.Addr.String(), 20, "-4"
	if cell.v6 {
		dst, ipHdr, flag = "fd77::2", 40, "-6"
	}
	ping := func(size int) (bool, string) {
		out, err := a.Exec(ctxFor(t, 10*time.Second), "ping", flag, "-n", "-c", "1", "-W", "1", "-M", "do", "-s", strconv.Itoa(size-ipHdr-8), dst)
		return err == nil && strings.Contains(string(out), "1 received"), string(out)
	}
	// The IPv6 address may need a moment for neighbour discovery: poll.
	must(t, cluster.Poll(ctxFor(t, 15*time.Second), 100*time.Millisecond, func() (bool, error) {
		ok, _ := ping(cell.hole)
		return ok, nil
	}))
	if ok, out := ping(cell.hole + 1); ok || strings.Contains(out, "too long") || strings.Contains(out, "Frag needed") {
		t.Fatalf("black hole: a %d-byte packet crossed or drew an error:\n%s", cell.hole+1, out)
	}
}

// BenchmarkUnderlayMTUCost is the price of the conservative default on a
// clean 1500-byte underlay, where nothing drops: bulk (cluster.
// MeasureThroughput, 64 MiB a run) between pairs of hosts whose daemons
// differ only in --mtu: 1420 (the old default: 1480-byte datagrams, which
// a black hole at 1400 swallows), none (the default: TCP held to 1400-byte
// datagrams), and 1280 (Tailscale's choice). The pairs share one cluster
// and are measured in turn, round after round, so that a busy machine
// weighs on all alike. Run with -benchtime=1x; rounds: NODEWIRE_MTU_ROUNDS
// (default 5).
func BenchmarkUnderlayMTUCost(b *testing.B) {
	cluster.Require(b)
	rounds := 5
	if v := os.Getenv("NODEWIRE_MTU_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("NODEWIRE_MTU_ROUNDS=%q", v)
		}
		rounds = n
	}
	for _, mode := range []string{"userspace", "tun"} {
		b.Run(mode, func(b *testing.B) {
			variants := []struct {
				name string
				args []string
			}{{"mtu1420", []string{"--mtu", "1420"}}, {"default", nil}, {"mtu1280", []string{"--mtu", "1280"}}}
			c := cluster.New(b, "mtucost")
			o := cluster.NewOverlay(c, b, "10.77.0.0/16")
			if _, err := o.Run("add-network", "--file", o.File, "--name", "app", "--prefix", "10.77.1.0/24"); err != nil {
				b.Fatal(err)
			}
			type pair struct{ a, b *cluster.OverlayHost }
			pairs := make([]pair, len(variants))
			args := map[*cluster.OverlayHost][]string{}
			var addArgs []string
			if mode == "tun" {
				addArgs = []string{"--mode", "tun"}
			}
			for i, v := range variants {
				for j := range 2 {
					name := fmt.Sprintf("h%d%d", i, j)
					h, err := o.AddPeer(name, "peer-"+name, "app", addArgs...)
					if err != nil {
						b.Fatal(err)
					}
					args[h] = v.args
					if j == 0 {
						pairs[i].a = h
					} else {
						pairs[i].b = h
					}
				}
			}
			inetrc := func(h *cluster.OverlayHost) string { return filepath.Join(h.Dir, "inetrc") }
			o.DaemonArgs = func(h *cluster.OverlayHost) []string {
				a := append([]string{}, args[h]...)
				if mode == "tun" {
					a = append(a, "--mode", "tun", "--inetrc", inetrc(h))
				}
				return a
			}
			for _, p := range pairs {
				for _, h := range []*cluster.OverlayHost{p.a, p.b} {
					if err := o.StartDaemon(h); err != nil {
						b.Fatal(err)
					}
					var err error
					if mode == "tun" {
						err = o.StartErlangNamed(h, inetrc(h))
					} else {
						err = o.StartErlang(h)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			// Wall-clock rates swing with the other work on a shared machine;
			// the daemons' CPU time per byte (both ends) is what the MTU
			// changes, and a busy neighbour hardly moves it.
			const mib = 128
			rates := make([][]float64, len(variants))
			cpu := make([][]float64, len(variants))
			for r := range rounds {
				for k := range variants {
					i := (k + r) % len(variants) // each variant goes first in turn
					before := daemonCPU(b, pairs[i].a, pairs[i].b)
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					mbs, err := cluster.MeasureThroughput(ctx, pairs[i].a.Node, pairs[i].b.Node, mib)
					cancel()
					if err != nil {
						b.Fatalf("%s: %v", variants[i].name, err)
					}
					rates[i] = append(rates[i], mbs)
					cpu[i] = append(cpu[i], (daemonCPU(b, pairs[i].a, pairs[i].b)-before).Seconds()*1e3/mib)
				}
			}
			spread := func(xs []float64) (med, lo, hi float64) {
				s := slices.Clone(xs)
				slices.Sort(s)
				return s[len(s)/2], s[0], s[len(s)-1]
			}
			for i, v := range variants {
				ratios := make([]float64, rounds)
				cpuRatios := make([]float64, rounds)
				for r := range rounds {
					ratios[r] = rates[i][r] / rates[0][r]
					cpuRatios[r] = cpu[i][r] / cpu[0][r]
				}
				med, lo, hi := spread(rates[i])
				rmed, rlo, rhi := spread(ratios)
				cmed, clo, chi := spread(cpu[i])
				crmed, crlo, crhi := spread(cpuRatios)
				b.Logf("%s %-8s bulk MB/s median %.0f (%.0f..%.0f), / mtu1420 same round %.3f (%.3f..%.3f); daemon CPU ms/MiB %.2f (%.2f..%.2f), / mtu1420 %.3f (%.3f..%.3f)",
					mode, v.name, med, lo, hi, rmed, rlo, rhi, cmed, clo, chi, crmed, crlo, crhi)
				b.ReportMetric(med, v.name+"-MB/s")
				b.ReportMetric(cmed, v.name+"-cpu-ms/MiB")
			}
		})
	}
}

// daemonCPU is the CPU time both hosts' overlayd have used so far.
func daemonCPU(tb testing.TB, hosts ...*cluster.OverlayHost) time.Duration {
	tb.Helper()
	var total time.Duration
	for _, h := range hosts {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", h.Daemon.Pid()))
		if err != nil {
			tb.Fatal(err)
		}
		// Fields after the command's closing parenthesis: state is the
		// 3rd field of stat, utime and stime the 14th and 15th.
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		for _, v := range f[11:13] {
			ticks, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatalf("/proc/%d/stat: %q", h.Daemon.Pid(), v)
			}
			total += time.Duration(ticks) * (time.Second / 100) // USER_HZ
		}
	}
	return total
}
