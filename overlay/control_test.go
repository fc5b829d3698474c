package overlay

import (
	"os"
	"path/filepath"
	"testing"
)

func TestControlSocketIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "nodewire")
	path := filepath.Join(dir, "overlayd.sock")
	ln, err := listenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a 0600 socket", st.Mode())
	}
	dst, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", dst.Mode().Perm())
	}
	if _, err := listenControl(path); err == nil {
		t.Error("a second daemon on the same socket was allowed")
	}
}
