package cluster

import (
	"bufio"
	"fmt"
	"strings"
)

// StartErlangNamed starts epmd and a node called app@PEER.nodewire with the
// environment and flags `overlayctl show` prints for the host (face or
// overlay address, by its mode), plus ERL_INETRC=inetrc so that every
// peer's name resolves to what this host must dial.
func (o *Overlay) StartErlangNamed(oh *OverlayHost, inetrc string, extraArgs ...string) error {
	show, err := o.Run("show", "--file", oh.PeerFile, oh.Peer)
	if err != nil {
		return err
	}
	oh.ErlEnv, oh.ErlArgs = nil, nil
	sc := bufio.NewScanner(strings.NewReader(show))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "export "):
			oh.ErlEnv = append(oh.ErlEnv, strings.TrimPrefix(line, "export "))
		case strings.HasPrefix(line, "erl "):
			args := shellFields(strings.TrimPrefix(line, "erl "))
			for i := 0; i < len(args); i++ {
				if args[i] == "-name" && i+1 < len(args) {
					i++
					continue
				}
				oh.ErlArgs = append(oh.ErlArgs, args[i])
			}
		}
	}
	if len(oh.ErlEnv) == 0 || len(oh.ErlArgs) == 0 {
		return fmt.Errorf("overlayctl show %s: no erl/export lines in:\n%s", oh.Peer, show)
	}
	if oh.EPMD, err = oh.StartEPMD(oh.ErlEnv); err != nil {
		return err
	}
	env := append(append([]string{}, oh.ErlEnv...), "ERL_INETRC="+inetrc)
	oh.Node, err = oh.StartNode(NodeOptions{Name: "app@" + oh.Peer + ".nodewire", Env: env,
		Args: append(append([]string{}, oh.ErlArgs...), extraArgs...)})
	return err
}
