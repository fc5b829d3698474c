package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestREADMECommandTable keeps the README's overlayctl table in step with
// the commands: every command has a row, and every row names a command.
func TestREADMECommandTable(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "\n## `overlayctl`\n")
	if start < 0 {
		t.Fatal("README.md has no ## `overlayctl` section")
	}
	section := text[start+1:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
	// The first column's cells: `cmd flags`, `cmd2 ...`.
	cell := regexp.MustCompile(`(?m)^\| (.*?) \|`)
	word := regexp.MustCompile("`([a-z][a-z0-9-]*)")
	var listed []string
	for _, m := range cell.FindAllStringSubmatch(section, -1) {
		for _, w := range word.FindAllStringSubmatch(m[1], -1) {
			listed = append(listed, w[1])
		}
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
		if !slices.Contains(listed, c.name) {
			t.Errorf("README.md's overlayctl table has no row for %s", c.name)
		}
	}
	for _, l := range listed {
		if !slices.Contains(names, l) {
			t.Errorf("README.md's overlayctl table lists %s, which is no command", l)
		}
	}
}
