// Command kubectl-herald is Herald's kubectl plugin: installed on the PATH,
// it runs as "kubectl herald <command>". Its commands:
//
//	migrate   convert MetalLB's configuration into Herald's
//	status    pools, Services and who announces them, BGP sessions, and what is not healthy
//	why       name the first broken link between a Service and a node that answers
//	version   print the plugin's version
//
// Each command is one entry of commands(), with its own flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/dynamic"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		dynamicClient: newDynamicClient,
	})
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK = 0
	// exitUnfaithful: the command did its work, but not everything could
	// be carried over faithfully (see its report).
	exitUnfaithful = 1
	// exitUsage: bad flags, or input that cannot be read.
	exitUsage = 2
)

// env is what a command may touch outside its arguments: the seams tests
// replace.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// dynamicClient connects to the cluster of a kubeconfig (empty: the
	// default loading rules, $KUBECONFIG or ~/.kube/config) and context
	// (empty: the current one).
	dynamicClient func(kubeconfig, context string) (dynamic.Interface, error)
}

// command is one subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, e env) int
}

func commands() []command {
	return []command{
		{"migrate", "convert MetalLB's configuration (custom resources or the pre-0.13 ConfigMap) into Herald's objects", runMigrate},
		{"status", "show the pools, the Services and who announces them, the BGP sessions, and what is not healthy", runStatus},
		{"why", "walk the chain from a Service to a node that answers, and name the first broken link", runWhy},
		{"version", "print the plugin's version", runVersion},
	}
}

func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], e)
		}
	}
	e.stderrf("kubectl herald: unknown command %q\n\n", args[0])
	usage(e)
	return exitUsage
}

func usage(e env) {
	e.stderrln("Usage: kubectl herald <command> [flags]")
	e.stderrln("\nCommands:")
	for _, c := range commands() {
		e.stderrf("  %-10s %s\n", c.name, c.summary)
	}
	e.stderrln("\nRun 'kubectl herald <command> -h' for a command's flags.")
}

// stderrf writes usage or a diagnostic to stderr. Its write error is
// ignored on purpose: stderr is where it would be reported, and the exit
// status still tells that the command failed.
func (e env) stderrf(format string, a ...any) { _, _ = fmt.Fprintf(e.stderr, format, a...) }

// stderrln is stderrf with fmt.Fprintln's formatting.
func (e env) stderrln(a ...any) { _, _ = fmt.Fprintln(e.stderr, a...) }

// report writes a command's output line by line, unchecked, and keeps the
// first write error, after which it writes nothing: the command checks err
// once, when the output is complete.
type report struct {
	w   io.Writer
	err error
}

func (r *report) printf(format string, a ...any) {
	if r.err == nil {
		_, r.err = fmt.Fprintf(r.w, format, a...)
	}
}

func (r *report) println(a ...any) {
	if r.err == nil {
		_, r.err = fmt.Fprintln(r.w, a...)
	}
}

// parseFlags parses a subcommand's flags, which take no arguments. When ok
// is false the subcommand returns code: help was asked for, a flag is bad,
// or arguments were given.
func parseFlags(fs *flag.FlagSet, args []string, e env, cmd string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		e.stderrf("%s: unexpected arguments %q\n", cmd, fs.Args())
		return exitUsage, false
	}
	return exitOK, true
}
