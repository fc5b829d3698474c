package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLightDependencies holds overlayctl to its diet: it speaks the
// control socket's JSON (package overlay/control) and edits peer files
// (package peers), so it must not link the data plane: no gVisor, no
// wireguard-go (not even its pure key or tun packages), no netstack and
// no overlay daemon. Before this rule it linked 48 such packages and was
// 8.4 MB.
func TestLightDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
	if err != nil {
		t.Fatalf("no go tool to list dependencies with: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const mod = "github.com/nodewire/nodewire/"
	forbidden := []string{"gvisor.dev/", "golang.zx2c4.com/", mod + "netstack", mod + "overlay/packetfilter", mod + "overlay/udpbind"}
	var bad []string
	pkgs := strings.Fields(string(out))
	for _, p := range pkgs {
		for _, f := range forbidden {
			if strings.HasPrefix(p, f) {
				bad = append(bad, p)
			}
		}
		if p == mod+"overlay" {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("overlayctl links %d data-plane packages, want none:\n%s", len(bad), strings.Join(bad, "\n"))
	}
	if !slices.Contains(pkgs, mod+"overlay/control") {
		t.Errorf("overlayctl does not link %soverlay/control: is this list right?\n%s", mod, out)
	}
}
