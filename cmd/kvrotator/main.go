// Command kvrotator rotates the secrets that applications keep in Azure Key Vault. The same binary is
// the Azure Functions custom handler and the operator's tool:
//
//	kvrotator serve      the Functions custom handler (host.json starts it)
//	kvrotator demo       the whole product against the built-in Key Vault emulator
//	kvrotator status     every secret's state, overdue first
//	kvrotator plan       what the next sweep would do, which tags are wrong
//	kvrotator rotate     rotate one secret now (or --dry-run)
//	kvrotator sweep      one sweep now (the on-premises runner's command)
//	kvrotator leak       the emergency response to a leaked value
//	kvrotator emulator   run the local Key Vault emulator
//	kvrotator version    print the version and the providers linked in
//
// The deployed binary is built with -tags lean (scripts/package.sh): it carries the handler and the
// operator commands only, not demo, emulator and their test host; -tags kvrotator_no_<provider> (e.g.
// kvrotator_no_postgres) leaves a provider out.
//
// Run `kvrotator <command> --help` for a command's flags.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kvrotator/kvrotator/providers/registry"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	cmds := []command{
		{"serve", "run the Azure Functions custom handler (started by the Functions host)", runServe},
		{"status", "a table of every secret: expiry, last rotation, overdue ones first (--json)", runStatus},
		{"plan", "each managed secret's policy, when it is due, what the next sweep would do, which tags are wrong", runPlan},
		{"rotate", "rotate one secret now: rotate VAULT SECRET [--dry-run]", runRotate},
		{"sweep", "run one sweep now, as the timer does (--dry-run); exit 0, 1 (failures) or 75 (transient)", runSweep},
		{"leak", "emergency: rotate whatever holds a leaked value (on standard input, or --sha256) and revoke it now; exit 3: not found", runLeak},
	}
	cmds = append(cmds, devCommands()...) // demo and emulator; not in the lean (deployed) build
	return append(cmds, command{"version", "print the version and the providers linked in", func(_ context.Context, _ []string, stdout, _ io.Writer) int {
		fmt.Fprintln(stdout, "kvrotator", version)
		// The providers linked into this build (scripts/package.sh KVROTATOR_PROVIDERS leaves others out).
		fmt.Fprintln(stdout, "providers:", strings.Join(registry.Names(), " "))
		return 0
	}})
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: kvrotator <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'kvrotator <command> --help' for the flags of a command.")
}

// run dispatches to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "kvrotator: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
