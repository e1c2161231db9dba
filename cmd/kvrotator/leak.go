package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// exitNotFound: the leaked value is in no managed secret (nothing changed).
const exitNotFound = 3

// runLeak is `kvrotator leak`: the emergency response to a leaked value, read from standard input (never
// from the command line, where other users and shell history see it) or given as its SHA-256.
func runLeak(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var sha string
	var dryRun bool
	a, o, rest, code := opsApp("leak", "leak [--sha256 HEX] [--dry-run] [--json] [--vaults LIST]  (the value on standard input)", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&sha, "sha256", "", "the leaked value's SHA-256 (`HEX`) instead of the value on standard input")
		fs.BoolVar(&dryRun, "dry-run", false, "say what would happen; change nothing")
	})
	if code >= 0 {
		return code
	}
	defer a.close()
	if len(rest) > 0 {
		fmt.Fprintln(stderr, "kvrotator leak: the value is read from standard input, never from the command line")
		return exitUsage
	}
	req := rotation.LeakRequest{SHA256: sha, DryRun: dryRun, Source: "kvrotator leak", Trigger: rotation.TriggerManual}
	if sha == "" {
		value, err := readLeakedValue(os.Stdin)
		if err != nil {
			fmt.Fprintf(stderr, "kvrotator leak: %v\n", err)
			return exitUsage
		}
		req.Value = providers.NewValue(value)
	}
	rep, err := a.engine.Leak(ctx, req)
	if err != nil {
		fmt.Fprintf(stderr, "kvrotator leak: %v\n", err)
		return exitUsage
	}
	if o.jsonOut {
		writeJSON(stdout, rep)
	} else {
		for _, out := range rep.Outcomes {
			fmt.Fprintln(stdout, describeOutcome(out))
			for _, f := range out.Followups {
				fmt.Fprintln(stdout, "  "+describeOutcome(f))
			}
		}
		if !rep.Found() {
			fmt.Fprintln(stdout, "not found: no managed secret holds this value in a version kvrotator tracks; nothing changed")
		}
		for _, e := range rep.Errors {
			fmt.Fprintln(stdout, "error: "+e)
		}
	}
	code = exitOK
	if !rep.Found() {
		code = exitNotFound
	}
	for _, out := range rep.Outcomes {
		if out.Class == rotation.ClassTransient {
			return exitTransient
		}
		if out.Class == rotation.ClassPermanent {
			code = exitProblem
		}
	}
	return code
}

// readLeakedValue reads one value from r: everything up to the end, without a final newline (as
// `echo` or a here-string adds one), at most 25 KB (Key Vault's limit).
func readLeakedValue(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(bufio.NewReader(r), 25*1024+2))
	if err != nil {
		return "", fmt.Errorf("reading the value from standard input: %w", err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	switch {
	case v == "":
		return "", fmt.Errorf("no value on standard input (pipe it in, or give --sha256)")
	case len(v) > 25*1024:
		return "", fmt.Errorf("the value on standard input is over 25 KB, longer than any Key Vault secret")
	}
	return v, nil
}
