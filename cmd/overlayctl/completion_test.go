package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestBashCompletion runs configs/overlayctl.bash in a real bash against
// this overlayctl, built for the test.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash not found: the completion script needs it")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "overlayctl"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	script, err := filepath.Abs("../../configs/overlayctl.bash")
	if err != nil {
		t.Fatal(err)
	}
	file := writeFixture(t, fixture)
	complete := func(words ...string) []string {
		t.Helper()
		var b strings.Builder
		b.WriteString("source " + script + "; COMP_WORDS=(")
		for _, w := range words {
			b.WriteString("'" + w + "' ")
		}
		b.WriteString("); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _overlayctl; printf '%s\\n' \"${COMPREPLY[@]}\"")
		cmd := exec.Command(bash, "--norc", "-c", b.String())
		cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return strings.Fields(string(out))
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	allCommands := strings.Join(names, " ")
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"overlayctl", "ro"}, "rotate-key"},
		{[]string{"overlayctl", ""}, allCommands + " help"},
		{[]string{"overlayctl", "explain", "--c"}, "--control"},
		{[]string{"overlayctl", "status", "--"}, "--control --json"},
		{[]string{"overlayctl", "explain", "--file", file, "pay"}, "pay-1 pay-2"},
		{[]string{"overlayctl", "rotate-key", "--file", file, "--self", "m"}, "mon-1"},
	} {
		got := complete(tc.words...)
		want := strings.Fields(tc.want)
		if strings.Join(sorted(got), " ") != strings.Join(sorted(want), " ") {
			t.Errorf("complete %q = %v, want %v", tc.words, got, want)
		}
	}
}

func sorted(s []string) []string {
	return slices.Sorted(slices.Values(s))
}
