// Command demo shows nodewire to a newcomer: three hosts (network
// namespaces on one bridge), an overlayd on each, stock epmd and erl nodes,
// a cross-host erpc call, a call the policy denies with its rule, and
// `overlayctl status`. Everything it makes is removed when it ends.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

func say(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }
func show(text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Println("    " + l)
	}
}

func main() {
	t := cluster.NewStandalone(func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
	code := 0
	if err := run(t); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		code = 1
	}
	say("Cleaning up: stopping every daemon and node, deleting the namespaces.")
	t.Close()
	if code == 0 {
		fmt.Println("\nDone. `make test` runs the same scenario and more as assertions.")
	}
	os.Exit(code)
}

func run(t *cluster.Standalone) error {
	cluster.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := cluster.New(t, "demo")

	say("nodewire demo: three hosts, two networks, one rule between them.")
	fmt.Println("    Each host is a Linux network namespace on a shared bridge (its 'underlay' address is 192.168.77.x).")
	fmt.Println("    Each runs overlayd (userspace WireGuard on ONE UDP port, no root needed), a stock epmd and a stock erl node.")

	say("Writing the peer file with overlayctl (the same file goes to every host).")
	o := cluster.NewOverlay(c, t, "10.77.0.0/16")
	for _, args := range [][]string{
		{"add-network", "--file", o.File, "--name", "payments", "--prefix", "10.77.1.0/24"},
		{"add-network", "--file", o.File, "--name", "monitoring", "--prefix", "10.77.2.0/24"},
	} {
		if _, err := o.Run(args...); err != nil {
			return err
		}
	}
	hosts := []struct{ host, peer, network string }{{"pay1", "pay-1", "payments"}, {"pay2", "pay-2", "payments"}, {"mon1", "mon-1", "monitoring"}}
	var oh []*cluster.OverlayHost
	for _, h := range hosts {
		x, err := o.AddPeer(h.host, h.peer, h.network)
		if err != nil {
			return err
		}
		oh = append(oh, x)
	}
	out, err := o.Run("allow", "--file", o.File, "--from", "monitoring", "--to", "payments", "--ports", "erlang")
	if err != nil {
		return err
	}
	show(out)
	fmt.Println("    monitoring may open Erlang connections (epmd + dist ports) to payments; nothing else crosses networks.")
	data, _ := os.ReadFile(o.File)
	say("The peer file (%s):", o.File)
	show(string(data))
	out, err = o.Run("check", "--file", o.File)
	if err != nil {
		return err
	}
	show(out)

	say("Starting overlayd on each host.")
	for _, h := range oh {
		if err := o.StartDaemon(h); err != nil {
			return err
		}
		fmt.Printf("    %s: overlayd up on UDP 51820 (underlay %s)\n", h.Peer, h.Addr)
	}

	say("How Erlang runs on pay-1, as `overlayctl show` prints it:")
	out, err = o.Run("show", "--file", oh[0].PeerFile, "pay-1")
	if err != nil {
		return err
	}
	show(out)

	say("Starting epmd and one node per host with exactly those flags (mon-1's node is -hidden: it bridges networks).")
	for i, h := range oh {
		var extra []string
		if i == 2 {
			extra = []string{"-hidden"}
		}
		if err := o.StartErlang(h, extra...); err != nil {
			return err
		}
		fmt.Printf("    %s: node %s (epmd and the node listen on the face %s only)\n", h.Peer, h.Node.Name, h.Face)
	}
	pay1, pay2, mon1 := oh[0].Node, oh[1].Node, oh[2].Node

	call := func(from *cluster.Node, to *cluster.Node) (string, error) {
		return from.Eval(ctx, fmt.Sprintf("erpc:call(%s, erlang, node, [])", cluster.Atom(to.Name)))
	}
	say("pay-1 calls pay-2 with erpc (same network: allowed).")
	res, err := call(pay1, pay2)
	if err != nil {
		return err
	}
	fmt.Printf("    erpc:call('%s', erlang, node, []) on pay-1 -> %s\n", pay2.Name, res)

	say("mon-1 calls pay-1 (monitoring -> payments: allowed by the rule).")
	if res, err = call(mon1, pay1); err != nil {
		return err
	}
	fmt.Printf("    erpc:call('%s', erlang, node, []) on mon-1 -> %s\n", pay1.Name, res)

	say("pay-1 tries mon-1 (payments -> monitoring: no rule allows it).")
	if _, err := pay1.Eval(ctx, fmt.Sprintf("erlang:disconnect_node(%s)", cluster.Atom(mon1.Name))); err != nil {
		return err
	}
	began := time.Now()
	res, err = pay1.Eval(ctx, fmt.Sprintf("net_adm:ping(%s)", cluster.Atom(mon1.Name)))
	if err != nil {
		return err
	}
	fmt.Printf("    net_adm:ping('%s') on pay-1 -> %s after %v: refused at once by pay-1's own overlayd\n", mon1.Name, res, time.Since(began).Round(time.Millisecond))
	fmt.Println("    pay-1's overlayd log says why:")
	for _, l := range strings.Split(oh[0].Daemon.Log(), "\n") {
		if strings.Contains(l, "deny") {
			fmt.Println("      " + l)
		}
	}
	out, err = o.Run("explain", "--file", o.File, "pay-1", "mon-1", "4369")
	if err != nil {
		return err
	}
	fmt.Printf("    overlayctl explain pay-1 mon-1 4369 -> %s", out)
	out, err = o.Run("explain", "--file", o.File, "mon-1", "pay-1", "4369")
	if err != nil {
		return err
	}
	fmt.Printf("    overlayctl explain mon-1 pay-1 4369 -> %s", out)

	say("overlayctl status on pay-1: peers, handshakes, bytes, connections, denials.")
	out, err = o.Run("status", "--control", oh[0].Control)
	if err != nil {
		return err
	}
	show(out)
	wg, err := oh[0].Exec(ctx, "wg", "show", oh[0].Interface)
	if err != nil {
		return fmt.Errorf("wg show %s: %v: %s", oh[0].Interface, err, wg)
	}
	say("The stock `wg show " + oh[0].Interface + "` sees the same device (--interface names it; overlayd's default is nw-<peer>):")
	show(string(wg))
	return nil
}
