package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"time"
)

// BuildBinaries builds each package (an import path such as
// github.com/nodewire/nodewire/cmd/overlayd, or a path relative to the module
// root such as ./cmd/overlayd) with `go build` into a temp dir removed at
// cleanup, and returns the binaries' paths keyed by their base names
// ("overlayd"). Hosts share the file system, so any host can run them.
//
// The build runs in the module that holds this package, whatever the
// caller's working directory; GOFLAGS (e.g. -race) applies as usual. A
// build failure fails the test with the compiler's output.
func BuildBinaries(t TB, pkgs ...string) map[string]string {
	t.Helper()
	dir, err := os.MkdirTemp("", Prefix+"bin-")
	if err != nil {
		t.Fatalf("cluster: BuildBinaries: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bins, err := buildInto(dir, pkgs...)
	if err != nil {
		t.Fatalf("cluster: BuildBinaries: %v", err)
	}
	return bins
}

func buildInto(dir string, pkgs ...string) (map[string]string, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	// `go test` and `go run` put their own go first on PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("no go on PATH: %w", err)
	}
	bins := map[string]string{}
	for _, pkg := range pkgs {
		name := path.Base(pkg)
		if _, dup := bins[name]; dup {
			return nil, fmt.Errorf("two packages named %q", name)
		}
		out := filepath.Join(dir, name)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, pkg)
		cmd.Dir = root
		msg, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
		}
		bins[name] = out
	}
	return bins, nil
}

// moduleRoot is the directory of go.mod above this source file: found from
// the file's own path so the demo and tests build the same tree wherever
// they run from.
func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the harness's source")
	}
	for dir := filepath.Dir(file); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod above %s", file)
		}
	}
}
