package peers

// Erlang's `global` (OTP 25+, prevent_overlapping_partitions) expects every
// node it hears of to be reachable: once B is connected to A and to C, global
// on A tries C and global on C tries A; each failure is reported to B, which
// has the other side disconnect, to keep partitions from overlapping. B loses
// A or C, or both: whichever report arrives first decides, and every
// reconnection starts it over (e2e TestPartialMesh). A policy that is not
// transitive breaks clusters that way, so the tools warn about it.

// Gap is a hole in the Erlang mesh: A and B reach each other, and B and C,
// but A and C do not. Each is a network name, or a peer name for a peer
// that rules name on its own (so it may reach more or less than its
// network). B is the bridge.
type Gap struct{ A, B, C string }

// MeshGaps lists every Gap of the policy, in file order of the bridges.
// "Reach" means Erlang distribution works in at least one direction: epmd
// and a distribution port are allowed (a distribution connection, once
// open, carries traffic both ways). Rules' `nodes:` are not considered: a
// rule that names some nodes counts as reach.
func (f *File) MeshGaps() []Gap {
	type unit struct {
		name string
		peer *Peer // a representative
	}
	var units []unit
	for _, nw := range f.Networks {
		for _, p := range f.Peers {
			if p.Network == nw && !f.policy.named[p.ID] {
				units = append(units, unit{nw.Name, p})
				break
			}
		}
	}
	for _, p := range f.Peers {
		if p.Network != nil && f.policy.named[p.ID] {
			units = append(units, unit{p.Name, p})
		}
	}
	probe := f.unlistedPort()
	reach := make([][]bool, len(units))
	for i := range units {
		reach[i] = make([]bool, len(units))
	}
	for i, a := range units {
		for j, b := range units {
			if j <= i {
				continue
			}
			r := f.erlangReach(a.peer, b.peer, probe) || f.erlangReach(b.peer, a.peer, probe)
			reach[i][j], reach[j][i] = r, r
		}
	}
	var gaps []Gap
	for b := range units {
		for a := range units {
			if a == b || !reach[a][b] {
				continue
			}
			for c := a + 1; c < len(units); c++ {
				if c == b || !reach[b][c] || reach[a][c] {
					continue
				}
				gaps = append(gaps, Gap{units[a].name, units[b].name, units[c].name})
			}
		}
	}
	return gaps
}

// erlangReach reports whether from's nodes can open a distribution
// connection to to's: epmd and a distribution port (probe, a port no rule
// lists by number, so only `erlang` or all-port rules allow it).
func (f *File) erlangReach(from, to *Peer, probe uint16) bool {
	return f.Decide(from, to, EPMDPort, true).Allow && f.Decide(from, to, probe, true).Allow
}

// unlistedPort is a port above 1023 that no rule names by number, or 0 if
// rules list them all (then EPMD's answer stands for Erlang's ports).
func (f *File) unlistedPort() uint16 {
	for port := 65535; port > 1023; port-- {
		listed := false
		for _, r := range f.Rules {
			for _, pr := range r.Ports.Ranges {
				if pr.Contains(uint16(port)) {
					listed = true
					break
				}
			}
			if listed {
				break
			}
		}
		if !listed {
			return uint16(port)
		}
	}
	return EPMDPort
}
