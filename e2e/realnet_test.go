package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// bulkBytes is the transfer of the loss cases: 16 MiB, as in the report of
// the loss cliff (issue 11: 10.7 s at 2% loss, connection lost at 5%).
const bulkBytes = 16 << 20

// smallBytes keeps a connection busy while a test watches it.
const smallBytes = 1 << 20

// A lossCase is one kind of damage on the underlay: an nftables match
// (bridge family, on the switch, so every frame between hosts meets it
// once, in both directions) whose packets are dropped.
type lossCase struct {
	name string
	rule string // e.g. "numgen random mod 1000 < 20"; empty: no loss
}

var (
	noLoss     = lossCase{"0%", ""}
	randomLoss = func(permille int) lossCase {
		return lossCase{fmt.Sprintf("%g%%", float64(permille)/10), fmt.Sprintf("numgen random mod 1000 < %d", permille)}
	}
	// burstLoss drops 10 frames in a row out of every 200 (5%, in bursts):
	// what a full queue somewhere on the path does.
	burstLoss = lossCase{"burst 10/200", "numgen inc mod 200 < 10"}
)

// underlay shapes the cluster's switch with nftables. Rules live in their
// own table in the switch namespace, which the harness removes with the
// run; clear also runs as a cleanup so a failed test leaves no loss behind
// for the next subtest.
type underlay struct {
	ns string
}

const lossTable = "nwloss"

func newUnderlay(t testing.TB, c *cluster.Cluster) *underlay {
	t.Helper()
	u := &underlay{ns: c.SwitchNS()}
	u.nft(t, "add", "table", "bridge", lossTable)
	u.nft(t, "add", "chain", "bridge", lossTable, "loss", "{ type filter hook forward priority 0; }")
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "exec", u.ns, "nft", "delete", "table", "bridge", lossTable).Run()
	})
	return u
}

func (u *underlay) nft(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", u.ns, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// set replaces the loss rule with lc's (IPv4 frames only: ARP passes, as
// on a lossy path beyond the first hop).
func (u *underlay) set(t testing.TB, lc lossCase) {
	t.Helper()
	u.nft(t, "flush", "chain", "bridge", lossTable, "loss")
	if lc.rule != "" {
		u.nft(t, append([]string{"add", "rule", "bridge", lossTable, "loss", "ether", "type", "ip"}, append(strings.Fields(lc.rule), "drop")...)...)
	}
}

// A lossPair is two Erlang nodes on two hosts of their own, connected by
// one of the data planes under test.
type lossPair struct {
	name string
	a, b *cluster.Node
}

// setupPlainPair is the reference: plain distribution over the underlay.
func setupPlainPair(t testing.TB, c *cluster.Cluster, id string) *lossPair {
	t.Helper()
	p := &lossPair{name: "plain"}
	for i, suffix := range []string{"a", "b"} {
		h := c.AddHost(id + suffix)
		_, err := h.StartEPMD(nil)
		must(t, err)
		n, err := h.StartNode(cluster.NodeOptions{Name: "app@" + h.Addr.String()})
		must(t, err)
		if i == 0 {
			p.a = n
		} else {
			p.b = n
		}
	}
	return p
}

// setupOverlayPair is two nodewire hosts in one network, mode "" (userspace)
// or "tun"; overlayd, if set, replaces this tree's daemon.
func setupOverlayPair(t testing.TB, c *cluster.Cluster, name, id, mode, overlayd string) *lossPair {
	t.Helper()
	var modeArgs []string
	if mode != "" {
		modeArgs = []string{"--mode", mode}
	}
	o := cluster.NewOverlay(c, t, "10.79.0.0/16")
	if overlayd != "" {
		o.Overlayd = overlayd
	}
	o.DaemonArgs = func(*cluster.OverlayHost) []string { return modeArgs }
	_, err := o.Run("add-network", "--file", o.File, "--name", "net", "--prefix", "10.79.1.0/24")
	must(t, err)
	var hosts []*cluster.OverlayHost
	for _, suffix := range []string{"a", "b"} {
		oh, err := o.AddPeer(id+suffix, id+"-"+suffix, "net", modeArgs...)
		must(t, err)
		hosts = append(hosts, oh)
	}
	for _, oh := range hosts {
		must(t, o.StartDaemon(oh))
	}
	for _, oh := range hosts {
		must(t, o.StartErlang(oh))
	}
	return &lossPair{name: name, a: hosts[0].Node, b: hosts[1].Node}
}

// connect pings until the pair is connected and loads the bulk binary and
// its md5 on a.
func (p *lossPair) connect(t testing.TB) {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	err := cluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		ok, err := p.a.Ping(ctx, p.b.Name)
		return err == nil && ok, nil
	})
	if err != nil {
		t.Fatalf("%s: %s cannot reach %s: %v", p.name, p.a.Name, p.b.Name, err)
	}
	eval(t, p.a, fmt.Sprintf(`B = rand:bytes(%d), persistent_term:put({nwbulk, %d}, {B, erlang:md5(B)}),
		S = rand:bytes(%d), persistent_term:put({nwbulk, %d}, {S, erlang:md5(S)}), ok`, bulkBytes, bulkBytes, smallBytes, smallBytes))
}

// transfer sends a binary of size bytes (bulkBytes or smallBytes) from a to
// b (b answers its md5) and returns how long the call took. The call gives
// up after limit (plus the time to hand the message to a busy connection);
// an error says why (a wrong checksum, a lost connection, the limit).
func (p *lossPair) transfer(size int, limit time.Duration) (time.Duration, error) {
	expr := fmt.Sprintf(`{B, M} = persistent_term:get({nwbulk, %d}), T0 = erlang:monotonic_time(microsecond),
		R = try erpc:call(%s, erlang, md5, [B], %d) of M -> ok; _ -> bad_md5 catch C:E -> {C, E} end,
		{R, erlang:monotonic_time(microsecond) - T0}`, size, cluster.Atom(p.b.Name), limit.Milliseconds())
	// erpc's timeout starts once the request is sent, and sending a big
	// message waits while the connection is busy: the Eval gets a
	// minute more.
	ctx, cancel := context.WithTimeout(context.Background(), limit+time.Minute)
	defer cancel()
	out, err := p.a.Eval(ctx, expr)
	if err != nil {
		return 0, err
	}
	// {ok,123456} or {{error,{erpc,timeout}},60000123}
	comma := strings.LastIndexByte(out, ',')
	if !strings.HasPrefix(out, "{") || !strings.HasSuffix(out, "}") || comma < 0 {
		return 0, fmt.Errorf("transfer: unexpected answer %s", out)
	}
	us, err := strconv.ParseInt(out[comma+1:len(out)-1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("transfer: unexpected answer %s", out)
	}
	took := time.Duration(us) * time.Microsecond
	if res := out[1:comma]; res != "ok" {
		return took, fmt.Errorf("%d KiB %s -> %s: %s after %v", size>>10, p.a.Name, p.b.Name, res, took.Round(time.Millisecond))
	}
	return took, nil
}

// TestRealNetworks: the data planes on an underlay that loses packets, the
// cases where nodewire userspace once fell off a cliff (recovery by
// retransmission timeout: 10.7 s for 16 MiB at 2% loss, the connection lost
// at 5%). The deadlines are failure bounds, not speed targets: the figures
// come from TestLossMatrix.
func TestRealNetworks(t *testing.T) {
	cluster.Require(t)
	start := time.Now()
	c := cluster.New(t, "realnet")
	pairs := []*lossPair{
		setupOverlayPair(t, c, "userspace", "us", "", ""),
		setupOverlayPair(t, c, "tun", "tn", "tun", ""),
	}
	u := newUnderlay(t, c)
	for _, p := range pairs {
		p.connect(t)
	}
	t.Logf("two pairs up in %v", time.Since(start).Round(time.Millisecond))

	for _, lc := range []lossCase{randomLoss(20), randomLoss(50), burstLoss} {
		t.Run(fmt.Sprintf("%d MiB arrive intact under %s loss", bulkBytes>>20, lc.name), func(t *testing.T) {
			u.set(t, lc)
			defer u.set(t, noLoss)
			for _, p := range pairs {
				took, err := p.transfer(bulkBytes, 3*time.Minute)
				if err != nil {
					t.Errorf("%s: %v", p.name, err)
					continue
				}
				t.Logf("%s: %d MiB in %v under %s loss", p.name, bulkBytes>>20, took.Round(time.Millisecond), lc.name)
			}
		})
	}

	t.Run("no nodedown during 60 s of 10% loss under load", func(t *testing.T) {
		window := 60 * time.Second
		before := make([]int, len(pairs))
		for i, p := range pairs {
			n, err := p.a.NodeDowns(ctxFor(t, 10*time.Second))
			must(t, err)
			before[i] = n
		}
		u.set(t, randomLoss(100))
		defer u.set(t, noLoss)
		// Each pair keeps data in flight for the whole window (1 MiB
		// calls, one after another): an idle connection only has to
		// carry a tick every 15 s, a busy one must also recover its
		// stream without ever stalling net_ticktime (60 s) long.
		ends := time.Now().Add(window)
		var wg sync.WaitGroup
		counts := make([]int, len(pairs))
		errs := make([]error, len(pairs))
		for i, p := range pairs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(ends) {
					if _, err := p.transfer(smallBytes, time.Until(ends)+time.Minute); err != nil {
						errs[i] = err
						return
					}
					counts[i]++
				}
			}()
		}
		wg.Wait()
		for i, p := range pairs {
			n, err := p.a.NodeDowns(ctxFor(t, 10*time.Second))
			must(t, err)
			if n != before[i] {
				t.Errorf("%s: %d nodedowns during 10%% loss", p.name, n-before[i])
			}
			if errs[i] != nil {
				t.Errorf("%s: %v", p.name, errs[i])
			}
			t.Logf("%s: %d transfers of %d KiB in %v of 10%% loss", p.name, counts[i], smallBytes>>10, window)
		}
	})
	t.Logf("real-network suite took %v", time.Since(start).Round(time.Millisecond))
}

// BenchmarkLossMatrix measures (it asserts nothing but completion of its setup):
// the time of a 16 MiB erpc call under each loss case, for plain
// distribution (the reference), nodewire userspace and TUN, and nodewire
// userspace built at older revisions. Run it with
//
//	NODEWIRE_LOSS_MATRIX=3 go test -count=1 -v -run '^$' -bench LossMatrix -benchtime 1x ./e2e/
//
// (3 rounds, the default; rows interleaved within a round). NODEWIRE_LOSS_BEFORE lists
// git revisions (comma-separated) to build overlayd at, each a row;
// NODEWIRE_LOSS_BINS adds rows name=/path/to/overlayd (a variant under
// study). A transfer that takes longer than 60 s (NODEWIRE_LOSS_LIMIT) is
// cut off and counted as failed.
//
// It is a benchmark, not a test, so `make test` never runs it.
func BenchmarkLossMatrix(tb *testing.B) {
	var t testing.TB = tb
	rounds := 3
	if v := os.Getenv("NODEWIRE_LOSS_MATRIX"); v != "" {
		var err error
		if rounds, err = strconv.Atoi(v); err != nil || rounds < 1 {
			t.Fatalf("NODEWIRE_LOSS_MATRIX=%q: want a number of rounds", v)
		}
	}
	cluster.Require(t)
	c := cluster.New(t, "lossmatrix")
	pairs := []*lossPair{setupPlainPair(t, c, "pl")}
	for i, rev := range splitList(os.Getenv("NODEWIRE_LOSS_BEFORE")) {
		bin := buildOverlaydAt(t, rev)
		pairs = append(pairs, setupOverlayPair(t, c, "user@"+rev, fmt.Sprintf("bf%d", i), "", bin))
	}
	for i, spec := range splitList(os.Getenv("NODEWIRE_LOSS_BINS")) {
		name, bin, ok := strings.Cut(spec, "=")
		if !ok {
			t.Fatalf("NODEWIRE_LOSS_BINS: %q is not name=path", spec)
		}
		pairs = append(pairs, setupOverlayPair(t, c, name, fmt.Sprintf("vr%d", i), "", bin))
	}
	pairs = append(pairs,
		setupOverlayPair(t, c, "userspace", "us", "", ""),
		setupOverlayPair(t, c, "tun", "tn", "tun", ""))
	u := newUnderlay(t, c)
	for _, p := range pairs {
		p.connect(t)
	}
	cases := []lossCase{noLoss, randomLoss(10), randomLoss(20), randomLoss(50), randomLoss(100), burstLoss}
	if only := os.Getenv("NODEWIRE_LOSS_CASES"); only != "" {
		cases = slices.DeleteFunc(cases, func(lc lossCase) bool { return !slices.Contains(splitList(only), lc.name) })
	}
	limit := 60 * time.Second
	if v := os.Getenv("NODEWIRE_LOSS_LIMIT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("NODEWIRE_LOSS_LIMIT=%q: %v", v, err)
		}
		limit = d
	}
	// took[case][pair] holds each round's time; failed transfers count
	// as limit and are counted separately.
	took := make([][][]time.Duration, len(cases))
	failed := make([][]int, len(cases))
	for ci := range cases {
		took[ci] = make([][]time.Duration, len(pairs))
		failed[ci] = make([]int, len(pairs))
	}
	for r := range rounds {
		for ci, lc := range cases {
			u.set(t, lc)
			for pi, p := range pairs {
				d, err := p.transfer(bulkBytes, limit)
				if err != nil {
					t.Logf("round %d, %s, %s: %v", r+1, lc.name, p.name, err)
					failed[ci][pi]++
					d = limit
					u.set(t, noLoss)
					p.connect(t)
					u.set(t, lc)
				}
				took[ci][pi] = append(took[ci][pi], d)
			}
		}
		u.set(t, noLoss)
	}
	// The table: median (min–max) per case and row, and goodput under
	// loss as a fraction of the row's own clean goodput, relative to
	// plain's fraction (the target is >= 0.8 up to 5% loss).
	var b strings.Builder
	fmt.Fprintf(&b, "16 MiB erpc:call, %d rounds, median (min-max) ms; [x] = (clean time / time) of the row over the same for plain\n", rounds)
	fmt.Fprintf(&b, "%-14s", "loss")
	for _, p := range pairs {
		fmt.Fprintf(&b, " | %-28s", p.name)
	}
	b.WriteString("\n")
	clean := slices.Index(cases, noLoss)
	for ci, lc := range cases {
		fmt.Fprintf(&b, "%-14s", lc.name)
		for pi := range pairs {
			ds := took[ci][pi]
			med := cluster.Median(slices.Clone(ds))
			cell := fmt.Sprintf("%d (%d-%d)", med.Milliseconds(), slices.Min(ds).Milliseconds(), slices.Max(ds).Milliseconds())
			if clean >= 0 && pi > 0 {
				frac := func(p int) float64 {
					return float64(cluster.Median(slices.Clone(took[clean][p]))) / float64(cluster.Median(slices.Clone(took[ci][p])))
				}
				cell += fmt.Sprintf(" [%.2f]", frac(pi)/frac(0))
			}
			if failed[ci][pi] > 0 {
				cell += fmt.Sprintf(" %d failed", failed[ci][pi])
			}
			fmt.Fprintf(&b, " | %-28s", cell)
		}
		b.WriteString("\n")
	}
	t.Log("\n" + b.String())
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// buildOverlaydAt builds cmd/overlayd at git revision rev of this
// repository into a temporary directory (git archive: no worktree is
// left behind).
func buildOverlaydAt(t testing.TB, rev string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	must(t, os.Mkdir(src, 0o755))
	wd, err := os.Getwd()
	must(t, err)
	archive := exec.Command("bash", "-c", `git -C "$(git -C "$1" rev-parse --show-toplevel)" archive --format=tar "$2" | tar -x -C "$3"`, "archive", wd, rev, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v: %s", rev, err, out)
	}
	bin := filepath.Join(dir, "overlayd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/overlayd")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build overlayd at %s: %v: %s", rev, err, out)
	}
	return bin
}
