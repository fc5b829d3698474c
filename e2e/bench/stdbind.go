package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// StdBindRow prefixes the IDs of the rows that run overlayd on
// wireguard-go's conn.StdNetBind instead of udpbind (-std-bind): stduser
// and stdtun, next to nwuser and nwtun in the same run.
const StdBindRow = "std"

// stdBindRows are nodewire userspace and TUN with this tree's overlayd
// started with NODEWIRE_BIND=std, through a wrapper script (the cluster
// passes no per-daemon environment; exec keeps the PID).
func stdBindRows() []Row {
	row := func(id, name, mode string) Row {
		return Row{ID: id, Name: name, Judged: false, Setup: func(e *Env, rowID string) (*Pair, error) {
			bin := cluster.BuildBinaries(e.T, "github.com/nodewire/nodewire/cmd/overlayd")["overlayd"]
			wrap := filepath.Join(e.Dir, "overlayd-stdbind-"+rowID)
			script := "#!/bin/sh\nNODEWIRE_BIND=std exec " + strconv.Quote(bin) + " \"$@\"\n"
			if err := os.WriteFile(wrap, []byte(script), 0o755); err != nil {
				return nil, fmt.Errorf("stdbind wrapper: %w", err)
			}
			return setupOverlay(e, rowID, mode, wrap)
		}}
	}
	return []Row{
		row(StdBindRow+"user", "nodewire userspace, StdNetBind", ""),
		row(StdBindRow+"tun", "nodewire TUN, StdNetBind", "tun"),
	}
}
