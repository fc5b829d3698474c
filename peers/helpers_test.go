package peers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Test keys, as `wg pubkey` prints them.
const (
	key1 = "QjymiqCIuDApl2TzlrhKdwo9IxbBMjTroG0Flsln/XI="
	key2 = "YEBb8v2Ra2dbW5FahRYJ09pWg+GjNN0G/HtCOmt0MNs="
	key3 = "xd7PDUbHFkyLnt6QYsXrX4poAcFNAGKVS/0cG2ypShY="
	key4 = "OZyoyjJ1/Ddv7UX/ZYGx1lAHKrt60eOXgZdb5dznlUk="
	key5 = "NwH54Vlf1W9b7Xi1iByilyx8DlxcKNVHXxE7xCc8UQg="
	key6 = "MLH1pgF0USPGq+rR4zNMY5RTUwvuS1Rnd0khdHXgwKs="
)

// keys replaces $K1..$K6 in test files, keeping them readable.
var keys = strings.NewReplacer("$K1", key1, "$K2", key2, "$K3", key3, "$K4", key4, "$K5", key5, "$K6", key6)

// mustParse parses a test file that must be valid.
func mustParse(t testing.TB, src string) *File {
	t.Helper()
	f, err := Parse("peers.yaml", []byte(keys.Replace(src)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

// parseErr parses a test file that must be invalid and returns its errors.
func parseErr(t testing.TB, src string) string {
	t.Helper()
	f, err := Parse("peers.yaml", []byte(keys.Replace(src)))
	if err == nil {
		t.Fatalf("Parse succeeded, want errors")
	}
	if f != nil {
		t.Errorf("Parse returned a File along with errors")
	}
	if _, ok := err.(Errors); !ok {
		t.Errorf("error is %T, want Errors", err)
	}
	return err.Error()
}

// fixtureFiles is the contents of every peer file under testdata/valid,
// testdata/invalid and testdata/edit: the seeds of the fuzz targets and the
// corpus of the tests that compare two ways of parsing.
func fixtureFiles(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, dir := range []string{"testdata/valid", "testdata/invalid", "testdata/edit"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, path := range files {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, data)
		}
	}
	return out
}
