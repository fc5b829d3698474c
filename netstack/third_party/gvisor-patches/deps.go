//go:build ignore

// deps prints the packages of module path under dir (the module's source
// in the cache) that the packages named on stdin import, transitively,
// under every build tag and platform, as go mod tidy counts them: a
// trimmed copy without them builds here but fails go mod tidy elsewhere.
//
//	go list -deps ./... | go run deps.go gvisor.dev/gvisor /path/to/module
package main

import (
	"bufio"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go run deps.go modpath moddir <packages")
		os.Exit(2)
	}
	mod, dir := os.Args[1], os.Args[2]
	seen := map[string]bool{}
	var todo []string
	add := func(p string) {
		if (p == mod || strings.HasPrefix(p, mod+"/")) && !seen[p] {
			seen[p] = true
			todo = append(todo, p)
		}
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		add(strings.TrimSpace(in.Text()))
	}
	for len(todo) > 0 {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		files, err := filepath.Glob(filepath.Join(dir, strings.TrimPrefix(p, mod), "*.go"))
		if err != nil || len(files) == 0 {
			fmt.Fprintf(os.Stderr, "deps: %s: no Go files in %s\n", p, dir)
			os.Exit(1)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				fmt.Fprintf(os.Stderr, "deps: %v\n", err)
				os.Exit(1)
			}
			for _, imp := range af.Imports {
				ip, _ := strconv.Unquote(imp.Path.Value)
				add(ip)
			}
		}
	}
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	for _, p := range out {
		fmt.Println(p)
	}
}
