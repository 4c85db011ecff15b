// Command backgate is an identity-aware reverse proxy in front of F5 BIG-IP.
// This package only wires the other packages together; run `backgate help`.
package main

import (
	"context"
	"github.com/backgate/backgate/cmd/internal/app"

	"errors"
	"flag"
	"fmt"
	"github.com/backgate/backgate/config"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. run gets the arguments after its name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a command may touch: streams and the environment, so tests
// can run commands in-process. It is the wiring package's own Env.
type env = app.Env

// errUsage means the command line was wrong; the message was printed.
var errUsage = errors.New("usage")

func commands() []command {
	return []command{
		{"serve", "run the proxy: backgate serve --config FILE", runServe},
		{"demo", "run everything locally on 127.0.0.1 with demo users, no set-up", runDemo},
		{"policy", "test, check or evaluate Rego policy (policy test|check|eval)", runPolicy},
		{"catalog", "show what backgate derived from Backstage (catalog show user|group|component NAME)", runCatalog},
		{"bigip", "render, plan or apply the iRule and data groups (bigip render|plan|apply)", runBigIP},
		{"keys", "manage signing keys (keys rotate)", runKeys},
		{"audit", "list or export the temporary-access audit trail (JSON, CSV)", runAudit},
		{"version", "print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	os.Exit(run(ctx, e, os.Args[1:]))
}

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, e, args[1:])
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			default:
				fmt.Fprintf(e.Stderr, "backgate %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(e.Stderr, "backgate: unknown command %q\n\n", args[0])
	usage(e.Stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "backgate: identity-aware reverse proxy in front of F5 BIG-IP")
	fmt.Fprintln(w, "\nUsage: backgate COMMAND [flags]   (backgate COMMAND --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	cs := commands()
	for _, c := range cs {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
}

// newFlags returns a FlagSet that prints its usage to e.Stderr with a
// one-line description, and reports errors instead of exiting.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("backgate "+name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.Stderr, "Usage: backgate %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses and maps flag errors to errUsage (already printed).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// subcommand dispatches "backgate GROUP SUB ..." to one of subs.
func subcommand(ctx context.Context, e *env, group string, args []string, subs map[string]func(context.Context, *env, []string) error) error {
	var names []string
	for n := range subs {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(e.Stderr, "Usage: backgate %s %s [flags]\n", group, strings.Join(names, "|"))
		if len(args) == 0 {
			return errUsage
		}
		return flag.ErrHelp
	}
	f, ok := subs[args[0]]
	if !ok {
		fmt.Fprintf(e.Stderr, "backgate %s: unknown subcommand %q (want %s)\n", group, args[0], strings.Join(names, ", "))
		return errUsage
	}
	return f(ctx, e, args[1:])
}

// requiredConfig loads the --config a command cannot do without; an empty
// path prints the command's usage.
func requiredConfig(fs *flag.FlagSet, path string) (*config.Config, error) {
	if path == "" {
		fmt.Fprintf(fs.Output(), "%s: --config FILE is required\n", fs.Name())
		fs.Usage()
		return nil, errUsage
	}
	return config.Load(path)
}
