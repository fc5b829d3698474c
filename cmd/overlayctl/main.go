// Command overlayctl manages a nodewire overlay: it makes keys, edits the
// shared peer file (keeping its comments), checks and explains its policy,
// shows how to start Erlang on a host, and talks to the local overlayd.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// env is what a command may touch besides the file system, so that tests
// can run commands in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// command is one subcommand of overlayctl. Every command has one shape:
// it parses its flags with newFlags, writes its output to e.stdout, and
// returns an error that exitCode turns into the message and exit code.
type command struct {
	name    string
	summary string // one line for `overlayctl -h`
	run     func(e *env, args []string) error
}

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// usageError is a wrong command line: exit code 2, with a pointer to -h.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

// exitCode reports what command name returned on e.stderr and maps it to
// the exit code: nil or flag.ErrHelp (help was printed) 0, a usageError 2,
// anything else 1, one line per line of the error (a peers.Errors has
// many).
func exitCode(e *env, name string, err error) int {
	var u *usageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &u):
		fmt.Fprintf(e.stderr, "overlayctl %s: %s (see overlayctl %s -h)\n", name, u.msg, name)
		return exitUsage
	}
	for _, line := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
		fmt.Fprintf(e.stderr, "overlayctl %s: %s\n", name, line)
	}
	return exitFailed
}

// commands lists the subcommands in the order `overlayctl -h` shows them.
// A function, not a variable, so there is no package-level state.
func commands() []command {
	return []command{
		{"genkey", "print a new private key (like wg genkey)", cmdGenkey},
		{"pubkey", "print the public key of the private key on stdin (like wg pubkey)", cmdPubkey},
		{"init", "write a new, commented peer file", cmdInit},
		{"add-network", "add a network to the peer file", cmdAddNetwork},
		{"add-peer", "add a peer to the peer file", cmdAddPeer},
		{"remove-peer", "remove a peer from the peer file", cmdRemovePeer},
		{"allow", "add an interconnect rule to the peer file", cmdAllow},
		{"check", "validate the peer file and run its tests", cmdCheck},
		{"explain", "say whether the policy allows a connection, and why", cmdExplain},
		{"show", "show a peer and how to start Erlang on its host", cmdShow},
		{"erl-inetrc", "print an Erlang inetrc naming every peer PEER.nodewire for one host", cmdErlInetrc},
		{"erlang-hosts", "print a .hosts.erlang of the hosts whose epmd one host may reach (net_adm:world())", cmdErlangHosts},
		{"wg-config", "print a wg-quick configuration for a peer with the standard WireGuard tools", cmdWGConfig},
		{"reload", "ask the local overlayd to reload its peer file", cmdReload},
		{"status", "show the local overlayd's peers and connections", cmdStatus},
		{"ping", "ping a peer from the local overlayd, through the overlay", cmdPing},
		{"rotate-key", "give this host a new key without downtime", cmdRotateKey},
		{"sign", "sign the peer file with an admin's SSH key (FILE.sig)", cmdSign},
		{"verify", "check the peer file's signature as overlayd --trust does", cmdVerify},
		{"publish", "write a signed peer file to an etcd key (compare-and-swap)", cmdPublish},
	}
}

func main() {
	os.Exit(run(os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}))
}

// run runs the command line args (without the program name) and returns
// the exit code.
func run(args []string, e *env) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if name == "help" && len(args) > 1 {
			return run([]string{args[1], "-h"}, e)
		}
		usage(e.stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return exitCode(e, name, c.run(e, args[1:]))
		}
	}
	fmt.Fprintf(e.stderr, "overlayctl: unknown command %q (see overlayctl -h)\n", name)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, "usage: overlayctl COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun overlayctl COMMAND -h for a command's flags.\nExit codes: 0 ok, 1 failed, 2 usage.\n")
}

// cmdFlags is the flag set of one command, with its usage text.
type cmdFlags struct {
	*flag.FlagSet
	e        *env
	synopsis string // "--file F --name N", after "overlayctl NAME"
	help     string // what the command does, a paragraph or two
}

func newFlags(e *env, name, synopsis, help string) *cmdFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Parse errors are reported by parse, in the one-line form.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cmdFlags{FlagSet: fs, e: e, synopsis: synopsis, help: help}
}

// file adds the --file flag that every peer-file command takes.
func (c *cmdFlags) file() *string {
	return c.String("file", "", "the peer file (required)")
}

func (c *cmdFlags) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: overlayctl %s %s\n\n%s\n", c.Name(), c.synopsis, strings.TrimSpace(c.help))
	hasFlags := false
	c.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprint(w, "\nflags:\n")
		c.SetOutput(w)
		c.PrintDefaults()
		c.SetOutput(io.Discard)
	}
}

// parse parses args, allowing flags after positional arguments
// ("explain A B --file F"), and checks the number of positional ones. For
// -h it prints the usage and returns flag.ErrHelp.
func (c *cmdFlags) parse(args []string, minArgs, maxArgs int) (pos []string, err error) {
	for {
		if err := c.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.usage(c.e.stdout)
				return nil, flag.ErrHelp
			}
			return nil, c.usageError("%v", err)
		}
		rest := c.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	switch {
	case len(pos) < minArgs:
		return nil, c.usageError("missing arguments")
	case len(pos) > maxArgs:
		return nil, c.usageError("unexpected argument %q", pos[maxArgs])
	}
	return pos, nil
}

// usageError is a wrong command line, reported in one line with exit code
// 2.
func (c *cmdFlags) usageError(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// required reports the first of the named string flags left empty.
func (c *cmdFlags) required(names ...string) error {
	for _, n := range names {
		if f := c.Lookup(n); f != nil && f.Value.String() == "" {
			return c.usageError("--%s is required", n)
		}
	}
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, it := range strings.Split(s, ",") {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}
