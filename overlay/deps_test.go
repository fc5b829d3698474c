package overlay

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoEtcdInDataPlane keeps the etcd client (and its gRPC) out of the
// daemon and its data plane: only overlay/etcdsource, wired by overlayd's
// main, talks to etcd, so an etcd that is down or slow cannot reach a
// packet's path.
func TestNoEtcdInDataPlane(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go tool to list dependencies with: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	var bad []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "go.etcd.io/") || strings.HasPrefix(p, "google.golang.org/grpc") || strings.HasSuffix(p, "/overlay/etcdsource") {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("package overlay links %d etcd packages, want none:\n%s", len(bad), strings.Join(bad, "\n"))
	}
}
