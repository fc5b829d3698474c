package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// startPlainNode starts epmd (all addresses) and node <name>@<underlay addr>
// on h: plain Erlang distribution over the underlay, no overlay.
func startPlainNode(t *testing.T, h *cluster.Host, name string) *cluster.Node {
	t.Helper()
	if _, err := h.StartEPMD(nil); err != nil {
		t.Fatal(err)
	}
	n, err := h.StartNode(cluster.NodeOptions{Name: name + "@" + h.Addr.String()})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// startPlainNodeErr is startPlainNode for other goroutines: it reports
// with t.Error (t.Fatal must not be called off the test goroutine) and
// returns nil on failure.
func startPlainNodeErr(t *testing.T, h *cluster.Host, name string) *cluster.Node {
	if _, err := h.StartEPMD(nil); err != nil {
		t.Error(err)
		return nil
	}
	n, err := h.StartNode(cluster.NodeOptions{Name: name + "@" + h.Addr.String()})
	if err != nil {
		t.Error(err)
		return nil
	}
	return n
}

// TestPlainDistribution is the harness's self-test and the baseline for the
// overlay benchmarks: two namespaces on the bridge, stock epmd and erl,
// distribution straight over the underlay.
func TestPlainDistribution(t *testing.T) {
	cluster.Require(t)
	var id string
	var pids []int
	t.Run("cluster", func(t *testing.T) {
		c := cluster.New(t, "self")
		id = c.ID()
		a, b := c.AddHost("a"), c.AddHost("b")
		if a.Addr == b.Addr || !cluster.Underlay.Contains(a.Addr) {
			t.Fatalf("bad underlay addresses %v %v", a.Addr, b.Addr)
		}
		// Boot both nodes at once: erl takes a second or two to start.
		var na, nb *cluster.Node
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); na = startPlainNodeErr(t, a, "a") }()
		go func() { defer wg.Done(); nb = startPlainNodeErr(t, b, "b") }()
		wg.Wait()
		if na == nil || nb == nil {
			t.FailNow()
		}
		for _, p := range []*cluster.Process{na.Process, nb.Process} {
			pids = append(pids, p.Pid())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()

		got, err := na.Eval(ctx, fmt.Sprintf("erpc:call(%s, erlang, node, []).", cluster.Atom(nb.Name)))
		if err != nil {
			t.Fatal(err)
		}
		if got != cluster.Atom(nb.Name) {
			t.Fatalf("erpc:call(b, erlang, node, []) = %s, want %s", got, cluster.Atom(nb.Name))
		}

		got, err = na.Eval(ctx, fmt.Sprintf(`
			Bin = rand:bytes(8 * 1024 * 1024),
			Sum = erpc:call(%s, erlang, md5, [Bin]),
			Sum =:= erlang:md5(Bin).`, cluster.Atom(nb.Name)))
		if err != nil || got != "true" {
			t.Fatalf("8 MiB md5 round trip: %q, %v", got, err)
		}

		mbps, err := cluster.MeasureThroughput(ctx, na, nb, 512)
		if err != nil {
			t.Fatal(err)
		}
		rtts, err := cluster.MeasureRTTs(ctx, na, nb, 2000)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("plain distribution over veth: %.0f MB/s (512 x 1 MiB, 8 in flight); erpc:call RTT median %v, p90 %v",
			mbps, cluster.Median(rtts), rtts[len(rtts)*9/10])
		if mbps <= 0 || cluster.Median(rtts) <= 0 {
			t.Fatalf("implausible measurements: %v MB/s, %v", mbps, cluster.Median(rtts))
		}

		// The counter sees b go away: poll, nodedown is asynchronous.
		if n, err := na.NodeDowns(ctx); err != nil || n != 0 {
			t.Fatalf("NodeDowns before stop = %d, %v; want 0", n, err)
		}
		if err := nb.Stop(); err != nil {
			t.Fatal(err)
		}
		err = cluster.Poll(ctx, 20*time.Millisecond, func() (bool, error) {
			n, err := na.NodeDowns(ctx)
			return n == 1, err
		})
		if err != nil {
			t.Fatalf("nodedown of b not counted: %v", err)
		}
		if ok, err := na.Ping(ctx, nb.Name); err != nil || ok {
			t.Fatalf("ping of stopped node = %v, %v; want pang", ok, err)
		}
	})
	assertGone(t, id, pids)
}

// assertGone checks that a run left no namespace and no process behind.
func assertGone(t *testing.T, id string, pids []int) {
	t.Helper()
	if id == "" {
		t.Fatal("run did not start")
	}
	left, err := cluster.Namespaces(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
	// Exited processes may linger as zombies only if unreaped; ours are
	// reaped by Wait, so kill(pid, 0) must fail.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, pid := range pids {
		err := cluster.Poll(ctx, 10*time.Millisecond, func() (bool, error) {
			return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH), nil
		})
		if err != nil {
			t.Errorf("process %d still alive after the run: %v", pid, err)
		}
	}
}

func TestEval(t *testing.T) {
	c := cluster.New(t, "eval")
	h := c.AddHost("a")
	n := startPlainNode(t, h, "a")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for expr, want := range map[string]string{
		"1 + 1":                       "2",
		"X = 3,\n Y = X * 2, {X, Y}.": "{3,6}",
		`"ab"`:                        "[97,98]",
		`<<"x\ny">>`:                  "<<120,10,121>>",
		`list_to_atom("it's")`:        `'it\'s'`,
		"node()":                      cluster.Atom(n.Name),
	} {
		got, err := n.Eval(ctx, expr)
		if err != nil || got != want {
			t.Errorf("Eval(%q) = %q, %v; want %q", expr, got, err, want)
		}
	}

	// Errors come back as *EvalError, and the driver survives them.
	for expr, want := range map[string]string{
		"1/0":           "error:badarith",
		"throw(oops)":   "throw:oops",
		"exit(bye)":     "exit:bye",
		"foo(":          "syntax error",
		"undefined_f()": "undef",
	} {
		_, err := n.Eval(ctx, expr)
		var ee *cluster.EvalError
		if !errors.As(err, &ee) || !strings.Contains(ee.Text, want) {
			t.Errorf("Eval(%q) error = %v; want EvalError with %q", expr, err, want)
		}
	}

	// Concurrent evaluations run in parallel and each gets its own answer:
	// 20 evaluations meet at a barrier in the node, which releases them only
	// when all 20 are waiting, so serialised evaluation would never finish.
	if _, err := n.Eval(ctx, `
		Barrier = fun Loop(Waiting) when length(Waiting) =:= 20 ->
		                  [P ! go || P <- Waiting];
		              Loop(Waiting) ->
		                  receive {wait, P} -> Loop([P | Waiting]) end
		          end,
		register(nwt_barrier, spawn(fun() -> Barrier([]) end)).`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := n.Eval(ctx, fmt.Sprintf("nwt_barrier ! {wait, self()}, receive go -> %d * 2 end.", i))
			if err != nil || got != strconv.Itoa(i*2) {
				t.Errorf("concurrent Eval %d = %q, %v", i, got, err)
			}
		}()
	}
	wg.Wait()

	// A deadline ends the wait, not the driver.
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err := n.Eval(short, "timer:sleep(5000).")
	cancelShort()
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Eval past its deadline: %v; want deadline exceeded", err)
	}
	if got, err := n.Eval(ctx, "ok"); err != nil || got != "ok" {
		t.Errorf("Eval after a timed-out one = %q, %v", got, err)
	}

	// A node that dies fails pending and later evaluations at once.
	errc := make(chan error, 1)
	go func() {
		_, err := n.Eval(ctx, "timer:sleep(60000).")
		errc <- err
	}()
	if _, err := n.Eval(ctx, "spawn(fun() -> timer:sleep(50), erlang:halt(3) end), ok."); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "exited") {
			t.Errorf("pending Eval on a dying node: %v; want exited", err)
		}
	case <-ctx.Done():
		t.Fatal("pending Eval not failed when the node died")
	}
	if _, err := n.Eval(ctx, "ok"); err == nil {
		t.Error("Eval on a dead node succeeded")
	}
}

func TestStartNodeWithoutEPMDFails(t *testing.T) {
	c := cluster.New(t, "noepmd")
	h := c.AddHost("a")
	_, err := h.StartNode(cluster.NodeOptions{Name: "a@" + h.Addr.String(), StartTimeout: 20 * time.Second})
	if err == nil {
		t.Fatal("node started without epmd")
	}
	t.Logf("as expected: %.300s", err)
	// Nothing runs in the namespace: in particular erl did not start an
	// untracked epmd. The dead node's port programs (inet_gethost) exit
	// when they see its end of their pipe close, which on a loaded machine
	// can come a little after the node's own exit: wait for them, with a
	// deadline. An epmd never exits on its own, so it is still caught.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pids []int
	cluster.Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		pids, err = h.PIDs(ctx)
		return err == nil && len(pids) == 0, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		t.Errorf("process left in the namespace: %d %s", pid, comm)
	}
}

func TestHostExecAndIsolation(t *testing.T) {
	c := cluster.New(t, "exec")
	a, b := c.AddHost("a"), c.AddHost("b")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	out, err := a.Exec(ctx, "ip", "-o", "-4", "addr", "show", "dev", a.Veth)
	if err != nil || !strings.Contains(string(out), a.Prefix.String()) {
		t.Fatalf("address of %s: %s, %v", a.Veth, out, err)
	}
	// b's epmd listens on all addresses; a reaches it over the bridge.
	if _, err := b.StartEPMD(nil); err != nil {
		t.Fatal(err)
	}
	dial := fmt.Sprintf("exec 3<>/dev/tcp/%s/4369", b.Addr)
	if _, err := a.Exec(ctx, "bash", "-c", dial); err != nil {
		t.Fatalf("a cannot reach b over the bridge: %v", err)
	}
	if _, err := a.Exec(ctx, "false"); err == nil {
		t.Error("Exec of false succeeded")
	}
	// The run's interfaces live only in its namespaces.
	root, err := exec.Command("ip", "-o", "link").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{a.SwitchPort, b.SwitchPort, "br0"} {
		if strings.Contains(string(root), " "+name+"@") || strings.Contains(string(root), " "+name+":") {
			t.Errorf("%s appears in the root namespace", name)
		}
	}
}

func TestProcessStop(t *testing.T) {
	c := cluster.New(t, "proc")
	h := c.AddHost("a")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	p, err := h.Start("echo", []string{"sh", "-c", "echo out; echo err >&2; echo $NWT_X"}, []string{"NWT_X=from-env"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"out", "err", "from-env"} {
		if !strings.Contains(p.Log(), want+"\n") {
			t.Errorf("log lacks %q:\n%s", want, p.Log())
		}
	}

	// A process ignoring SIGTERM is killed after StopTimeout.
	old := cluster.StopTimeout
	cluster.StopTimeout = 300 * time.Millisecond
	defer func() { cluster.StopTimeout = old }()
	stubborn, err := h.Start("stubborn", []string{"sh", "-c", `trap "" TERM; echo armed; while :; do read x < /dev/zero; done`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Poll(ctx, 10*time.Millisecond, func() (bool, error) {
		return strings.Contains(stubborn.Log(), "\narmed\n"), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := stubborn.Stop(); err != nil {
		t.Fatal(err)
	}
	if ws := stubborn.Wait(ctx); ws == nil || !strings.Contains(ws.Error(), "killed") {
		t.Errorf("stubborn process exit = %v; want killed", ws)
	}
}

func TestBuildBinaries(t *testing.T) {
	bins := cluster.BuildBinaries(t, "github.com/nodewire/nodewire/e2e/cluster/testdata/hello")
	c := cluster.New(t, "build")
	h := c.AddHost("a")
	out, err := h.Exec(context.Background(), bins["hello"], "x")
	if err != nil || !strings.HasPrefix(string(out), "hello ") {
		t.Fatalf("built binary on a host: %q, %v", out, err)
	}
}

func TestSweepRefusesForeignPrefix(t *testing.T) {
	for _, p := range []string{"", "n", "netns", "nwt"} {
		if err := cluster.Sweep(p); err == nil {
			t.Errorf("Sweep(%q) accepted", p)
		}
	}
}

// Child-process tests: the test binary runs itself with NWT_CHILD set to
// end a run badly (t.Fatal, panic, a crash like -timeout's, SIGKILL) and the parent checks what is
// left. The child prints "nwt-run <id> <pid>..." so the parent knows what to
// look for.

const childEnv = "NWT_CHILD"

// TestMain keeps the TestChild helper out of normal runs (instead of letting
// it report SKIP), unless the caller chose -test.skip themselves.
func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(childEnv) == "" && flag.Lookup("test.skip").Value.String() == "" {
		_ = flag.Set("test.skip", "^TestChild$")
	}
	os.Exit(m.Run())
}

func TestChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("helper for TestCleanupOnBadEndings; runs only as a child")
	}
	c := cluster.New(t, "child")
	h := c.AddHost("a")
	epmd, err := h.StartEPMD(nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := h.StartNode(cluster.NodeOptions{Name: "a@" + h.Addr.String()})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("nwt-run %s %d %d\n", c.ID(), epmd.Pid(), n.Process.Pid())
	switch mode {
	case "fatal":
		t.Fatal("deliberate failure")
	case "panic":
		panic("deliberate panic")
	case "crash":
		// What -test.timeout does: panic on a goroutine other than the
		// test's, which ends the process without running any cleanup.
		go panic("simulated test timeout")
		<-make(chan struct{})
	case "sigkill":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

func TestCleanupOnBadEndings(t *testing.T) {
	cluster.Require(t)
	for _, mode := range []string{"fatal", "panic", "crash", "sigkill"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestChild$", "-test.v", "-test.timeout=90s")
			cmd.Env = append(os.Environ(), childEnv+"="+mode)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("child passed; output:\n%s", out)
			}
			var id string
			var pids []int
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) >= 3 && f[0] == "nwt-run" {
					id = f[1]
					for _, s := range f[2:] {
						pid, _ := strconv.Atoi(s)
						pids = append(pids, pid)
					}
				}
			}
			if id == "" {
				t.Fatalf("child did not report its run; output:\n%s", out)
			}
			if mode == "crash" || mode == "sigkill" {
				// No cleanups ran: the processes died with the harness
				// (Pdeathsig), the namespaces wait for a sweep.
				for _, pid := range pids {
					err := cluster.Poll(ctx, 10*time.Millisecond, func() (bool, error) {
						return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH), nil
					})
					if err != nil {
						t.Errorf("process %d outlived its harness: %v", pid, err)
					}
				}
				// Its owner is dead, so a sweep by any concurrent test run
				// may already have removed them: not an error.
				if left, _ := cluster.Namespaces(id); len(left) == 0 {
					t.Logf("leftovers of %s already swept by someone else", id)
				}
				script := filepath.Join(sourceDir(t), "..", "cleanup.sh")
				sout, err := exec.CommandContext(ctx, "sh", script, id).CombinedOutput()
				if err != nil {
					t.Fatalf("cleanup.sh: %v\n%s", err, sout)
				}
				t.Logf("cleanup.sh: %s", strings.TrimSpace(string(sout)))
			} else if !strings.Contains(string(out), "logs kept in") {
				t.Errorf("failed child did not report its kept logs:\n%s", out)
			}
			assertGone(t, id, pids)
			// Kept logs of the failed child: remove them here.
			if dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), id+"-*")); len(dirs) > 0 {
				for _, d := range dirs {
					_ = os.RemoveAll(d)
				}
			}
		})
	}
}

// sourceDir is the directory of this file, wherever the test binary runs.
func sourceDir(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source")
	}
	return filepath.Dir(file)
}

func TestSweepStale(t *testing.T) {
	cluster.Require(t)
	// pid_max is at most 2^22, so this owner never exists.
	stale := fmt.Sprintf("%s99999999-%d-stale-a", cluster.Prefix, os.Getpid())
	live := fmt.Sprintf("%s%d-000000-live-a", cluster.Prefix, os.Getpid())
	for _, ns := range []string{stale, live} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
	}
	t.Cleanup(func() {
		if err := cluster.Sweep(live); err != nil {
			t.Error(err)
		}
		_ = cluster.Sweep(stale)
	})
	// A process inside the stale namespace must not keep it alive.
	sleeper := exec.Command("ip", "netns", "exec", stale, "sleep", "600")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleeper.Wait() }()

	if err := cluster.SweepStale(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Error("process in the stale namespace survived the sweep")
	}
	if left, _ := cluster.Namespaces(stale); len(left) != 0 {
		t.Errorf("stale namespace survived: %v", left)
	}
	if left, _ := cluster.Namespaces(live); len(left) != 1 {
		t.Errorf("live run's namespace was swept")
	}
}

// TestLoopbackFaces runs what overlay tests will run: epmd and nodes bound
// to loopback addresses ("faces") through the standard flags. One epmd per
// host (it always listens on 127.0.0.1 too, so a second one cannot), two
// nodes on their own faces.
func TestLoopbackFaces(t *testing.T) {
	c := cluster.New(t, "faces")
	h := c.AddHost("a")
	faces := []string{"127.77.1.1", "127.77.1.2"}
	env := []string{"ERL_EPMD_ADDRESS=" + strings.Join(faces, ",")}
	if _, err := h.StartEPMD(env); err != nil {
		t.Fatal(err)
	}
	var nodes []*cluster.Node
	for i, face := range faces {
		tuple := "{" + strings.ReplaceAll(face, ".", ",") + "}"
		n, err := h.StartNode(cluster.NodeOptions{
			Name: fmt.Sprintf("app%d@%s", i+1, face),
			Env:  env,
			Args: []string{"-kernel", "inet_dist_use_interface", tuple},
		})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if ok, err := nodes[0].Ping(ctx, nodes[1].Name); err != nil || !ok {
		t.Fatalf("ping between faces = %v, %v", ok, err)
	}
	// epmd listens on the faces (and loopback) only, the dist listener on
	// its face only.
	port, err := nodes[1].Eval(ctx, `{ok, Ns} = erl_epmd:names({127,77,1,2}), {_, P} = lists:keyfind("app2", 1, Ns), P.`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.Exec(ctx, "ss", "-Htln")
	if err != nil {
		t.Fatal(err)
	}
	local := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) >= 4 {
			local[f[3]] = true
			if strings.HasPrefix(f[3], "0.0.0.0:") || strings.HasPrefix(f[3], "*:") || strings.HasPrefix(f[3], "[::]:") {
				t.Errorf("wildcard listener %s", f[3])
			}
		}
	}
	for _, want := range []string{"127.77.1.2:" + port, "127.77.1.1:4369", "127.77.1.2:4369"} {
		if !local[want] {
			t.Errorf("no listener on %s:\n%s", want, out)
		}
	}
}
