package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// TestSoak runs 200 concurrent TCP connections (through an exposed port)
// and 200 concurrent erpc streams through one daemon for NODEWIRE_SOAK
// (10 s in `make test`, 60 s or more in `make soak`) and checks that the
// daemon's goroutines return to where they were and its resident memory
// stays flat.
func TestSoak(t *testing.T) {
	cluster.Require(t)
	d, long := soakTime(t)
	const conns, streams, port = 200, 200, 7000
	c := cluster.New(t, "soak")
	o := cluster.NewOverlay(c, t, "10.80.0.0/16")
	_, err := o.Run("add-network", "--file", o.File, "--name", "core", "--prefix", "10.80.1.0/24")
	must(t, err)
	s1, err := o.AddPeer("s1", "soak-1", "core")
	must(t, err)
	s2, err := o.AddPeer("s2", "soak-2", "core")
	must(t, err)
	// s2 offers port 7000 (an echo in its Erlang node) through the overlay.
	text := mustReadFile(t, o.File)
	_, err = o.Run("remove-peer", "--file", o.File, "--name", "soak-2")
	must(t, err)
	pub2 := pubkey(t, o, s2)
	_, err = o.Run("add-peer", "--file", o.File, "--name", "soak-2", "--network", "core", "--public-key", pub2,
		"--endpoint", s2.Addr.String()+":51820", "--expose", strconv.Itoa(port))
	must(t, err)
	if mustReadFile(t, o.File) == text {
		t.Fatal("expose not written")
	}
	// A low GOGC makes the daemons collect often, so the live heap (what
	// a leak would grow) is measured many times during the load.
	t.Setenv("GOGC", "25")
	for _, h := range []*cluster.OverlayHost{s1, s2} {
		must(t, o.StartDaemon(h))
		must(t, o.StartErlang(h))
	}
	face2 := strings.ReplaceAll(s2.Face, ".", ",")
	eval(t, s2.Node, fmt.Sprintf(`Parent = self(), spawn(fun() ->
			{ok, L} = gen_tcp:listen(%d, [binary, {ip, {%s}}, {active, false}, {reuseaddr, true}, {backlog, 1024}]),
			register(echo_owner, self()), Parent ! listening,
			(fun Acc() -> {ok, S} = gen_tcp:accept(L),
				P = spawn(fun() -> receive go -> ok end, (fun E() -> case gen_tcp:recv(S, 0) of {ok, B} -> gen_tcp:send(S, B), E(); _ -> gen_tcp:close(S) end end)() end),
				gen_tcp:controlling_process(S, P), P ! go, Acc() end)() end),
		receive listening -> ok after 5000 -> timeout end`, port, face2))

	sample := func(h *cluster.OverlayHost) (int, uint64) {
		st := status(t, h)
		return st.Goroutines, st.RSSBytes
	}
	// Warm up once (buffers, pools, faces), then take the baseline.
	eval(t, s1.Node, fmt.Sprintf("{ok, S} = gen_tcp:connect({%s}, %d, [binary, {active, false}]), gen_tcp:send(S, <<1,2,3>>), {ok, _} = gen_tcp:recv(S, 3, 5000), gen_tcp:close(S)", face2, port))
	if got := eval(t, s1.Node, fmt.Sprintf("erpc:call(%s, erlang, node, [])", cluster.Atom(s2.Node.Name))); got != cluster.Atom(s2.Node.Name) {
		t.Fatalf("erpc s1 -> s2: %s", got)
	}
	g0, rss0 := sample(s1)
	g20, _ := sample(s2)

	// Clients on s1: conns echo loops and streams erpc loops, each
	// checking what comes back, until the deadline.
	eval(t, s1.Node, fmt.Sprintf(`Total = %d, Parent = spawn(fun() -> (fun C(Rs) when length(Rs) =:= Total ->
				Sum = {lists:sum([R || R <- Rs, is_integer(R)]), length([R || R <- Rs, not is_integer(R)]), lists:sublist([R || R <- Rs, not is_integer(R)], 3)},
				receive {get, From} -> From ! {soak_result, Sum} end;
			C(Rs) -> receive {soak, _, R} -> C([R | Rs]) end end)([]) end),
		register(soak_collector, Parent), Deadline = erlang:monotonic_time(millisecond) + %d, S2 = %s,
		Echo = fun(I) -> {ok, S} = gen_tcp:connect({%s}, %d, [binary, {active, false}], 10000),
			B = rand:bytes(16384 + I), T0 = erlang:monotonic_time(millisecond),
			(fun L(N) -> case erlang:monotonic_time(millisecond) < Deadline of
				true -> ok = gen_tcp:send(S, B),
					case gen_tcp:recv(S, byte_size(B), 30000) of
						{ok, B} -> L(N + 1);
						Other -> exit({recv, N, erlang:monotonic_time(millisecond) - T0, Other}) end;
				false -> gen_tcp:close(S), N end end)(0) end,
		Rpc = fun(I) -> B = rand:bytes(4096 + I),
			(fun L(N) -> case erlang:monotonic_time(millisecond) < Deadline of
				true -> M = erlang:md5(B), M = erpc:call(S2, erlang, md5, [B], 30000), L(N + 1);
				false -> N end end)(0) end,
		Run = fun(F, I) -> spawn(fun() -> Parent ! {soak, self(), catch F(I)} end) end,
		Pids = [Run(Echo, I) || I <- lists:seq(1, %d)] ++ [Run(Rpc, I) || I <- lists:seq(1, %d)],
		length(Pids)`,
		conns+streams, d.Milliseconds(), cluster.Atom(s2.Node.Name), face2, port, conns, streams))

	// While it runs: the connections are there, and memory is sampled.
	type point struct {
		at        time.Duration
		g         int
		rss, heap uint64
		gcs       uint64
	}
	var points []point
	began := time.Now()
	var peakOpen int64
	tick := time.NewTicker(time.Second) // the measurement's sampling period
	defer tick.Stop()
	for time.Since(began) < d {
		st := status(t, s1)
		for _, p := range st.Peers {
			if p.Name == s2.Peer {
				peakOpen = max(peakOpen, p.OpenConns)
			}
		}
		points = append(points, point{time.Since(began), st.Goroutines, st.RSSBytes, st.HeapLiveBytes, st.GCCycles})
		<-tick.C
	}
	out := eval(t, s1.Node, "soak_collector ! {get, self()}, receive {soak_result, R} -> R after 60000 -> timeout end")
	t.Logf("soak %v: %d echo connections + %d erpc streams: {round trips, failures, reasons} = %s", d, conns, streams, oneLineTrim(out, 400))
	t.Logf("s1's daemon carried at most %d connections to s2 at once", peakOpen)
	if peakOpen < conns {
		t.Errorf("never %d connections open at once (peak %d)", conns, peakOpen)
	}
	if !strings.Contains(out, ",0,[]}") {
		t.Errorf("some clients failed: %s", oneLineTrim(out, 1500))
	}

	// Afterwards: goroutines back to the baseline, memory flat.
	var g1, g21 int
	var rss1 uint64
	ctx := ctxFor(t, 60*time.Second)
	err = cluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		g1, rss1 = sample(s1)
		g21, _ = sample(s2)
		return g1 <= g0+5 && g21 <= g20+5 && peerStatus(t, s1, s2.Peer).OpenConns <= 1, nil
	})
	var peakG int
	var midHeap, lastHeap, lastRSS uint64
	var midGCs, lastGCs []uint64
	var series []string
	for i, p := range points {
		peakG = max(peakG, p.g)
		switch {
		case i >= len(points)/3 && i < 2*len(points)/3:
			midHeap = max(midHeap, p.heap)
			midGCs = append(midGCs, p.gcs)
		case i >= 2*len(points)/3:
			lastHeap = max(lastHeap, p.heap)
			lastGCs = append(lastGCs, p.gcs)
		}
		lastRSS = p.rss
		series = append(series, fmt.Sprintf("%ds:%d/%.0f/%.0f", int(p.at.Seconds()), p.g, float64(p.rss)/(1<<20), float64(p.heap)/(1<<20)))
	}
	mib := func(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	t.Logf("s1 overlayd under load (time:goroutines/RSS MiB/live heap MiB): %s", strings.Join(series, " "))
	t.Logf("s1 overlayd: goroutines %d before, peak %d under load, %d after; RSS %s before, %s at the end of the load, %s after; live heap max %s in the middle third, %s in the last third",
		g0, peakG, g1, mib(rss0), mib(lastRSS), mib(rss1), mib(midHeap), mib(lastHeap))
	t.Logf("s2 overlayd: goroutines %d before, %d after", g20, g21)
	if err != nil {
		t.Fatalf("goroutines did not come back: s1 %d -> %d, s2 %d -> %d", g0, g1, g20, g21)
	}
	// Flat: in a long soak the live heap of the last third stays within
	// the middle third's high-water mark plus a margin. A short run is
	// still ramping its buffers up: reported only.
	if long {
		if len(lastGCs) < 2 || lastGCs[len(lastGCs)-1] == lastGCs[0] || len(midGCs) < 2 || midGCs[len(midGCs)-1] == midGCs[0] {
			t.Fatalf("too few GCs to judge the live heap (middle third %v, last third %v)", midGCs, lastGCs)
		}
		if lastHeap > midHeap+midHeap/8+8<<20 {
			t.Fatalf("live heap grew under steady load: %s in the middle third, %s in the last", mib(midHeap), mib(lastHeap))
		}
	}
}

func oneLineTrim(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
