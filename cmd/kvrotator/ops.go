package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/kvrotator/kvrotator/rotation"
)

// Exit codes of the operator commands, for scripts.
const (
	exitOK        = 0  // nothing wrong
	exitProblem   = 1  // a permanent failure, an overdue secret or a bad tag (see the output)
	exitUsage     = 2  // bad flags or configuration
	exitTransient = 75 // a transient failure (EX_TEMPFAIL): try again later
)

const opsHelp = `Operator commands read the same settings as the Function App (KVROTATOR_VAULTS and the
others in local.settings.sample.json; --vaults overrides KVROTATOR_VAULTS) and authenticate like it:
a managed identity where there is one, a certificate service principal (AZURE_CLIENT_CERTIFICATE_PATH),
else DefaultAzureCredential (e.g. after "az login").

Exit codes: 0 all good, 1 a failure, overdue secret or bad tag, 2 usage or configuration error,
75 a transient failure (try again later).
`

// opsFlags are the flags every operator command shares.
type opsFlags struct {
	vaults  string
	jsonOut bool
}

func (o *opsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.vaults, "vaults", "", "vaults to use (overrides KVROTATOR_VAULTS): `LIST` of names, URLs or name=URL")
	fs.BoolVar(&o.jsonOut, "json", false, "print JSON instead of a table")
}

// opsApp parses the flags and builds the app; it returns a non-negative exit code when it is done.
func opsApp(name, usage string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*app, *opsFlags, []string, int) {
	fs := flag.NewFlagSet("kvrotator "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o opsFlags
	o.register(fs)
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kvrotator %s\n\n%s\n", usage, opsHelp)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, nil, exitOK
		}
		return nil, nil, nil, exitUsage
	}
	getenv := os.Getenv
	if o.vaults != "" {
		getenv = func(k string) string {
			if k == "KVROTATOR_VAULTS" {
				return o.vaults
			}
			return os.Getenv(k)
		}
	}
	a, err := newApp(getenv, io.Discard, io.Discard, nil) // the commands print outcomes themselves
	if err != nil {
		fmt.Fprintf(stderr, "kvrotator %s: configuration error: %v\n", name, err)
		return nil, nil, nil, exitUsage
	}
	return a, &o, fs.Args(), -1
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func parseAt(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--at %q: want RFC 3339 (2027-01-31T00:00:00Z) or a date (2027-01-31)", s)
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var at string
	a, o, rest, code := opsApp("status", "status [--json] [--at TIME] [--vaults LIST]", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&at, "at", "", "show the state as of `TIME` (RFC 3339 or a date) instead of now")
	})
	if code >= 0 {
		return code
	}
	defer a.close()
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "kvrotator status: unexpected argument %q\n", rest[0])
		return exitUsage
	}
	t, err := parseAt(at)
	if err != nil {
		fmt.Fprintf(stderr, "kvrotator status: %v\n", err)
		return exitUsage
	}
	rep := a.engine.Status(ctx, t)
	if o.jsonOut {
		writeJSON(stdout, rep)
	} else {
		printStatus(stdout, rep)
	}
	return statusExit(rep)
}

func statusExit(rep rotation.StatusReport) int {
	if len(rep.Errors) > 0 || rep.Overdue() > 0 || rep.PolicyErrors() > 0 {
		return exitProblem
	}
	return exitOK
}

func printStatus(w io.Writer, rep rotation.StatusReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tVAULT\tSECRET\tPROVIDER\tEXPIRES\tLAST ROTATED\tNOTE")
	for _, s := range rep.Secrets {
		state := "ok"
		switch {
		case !s.Managed:
			state = "unmanaged"
		case s.PolicyError != "":
			state = "BAD TAGS"
		case s.Overdue:
			state = "OVERDUE"
		case s.Due:
			state = "due"
		}
		note := s.Reason
		if s.PolicyError != "" {
			note = s.PolicyError
		}
		if !s.Managed {
			note = ""
		}
		if n := notMoved(s.Consumers); n > 0 {
			note += fmt.Sprintf(" [%d of %d readers not on the latest version]", n, len(s.Consumers))
		}
		last := "-"
		if s.LastRotated != nil {
			last = s.LastRotated.UTC().Format("2006-01-02") + " (" + string(s.LastTrigger) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", state, s.Vault, s.Secret, dash(s.Provider), when(s.Expires, rep.At), last, note)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d secrets, %d overdue, %d with bad tags (as of %s)\n", len(rep.Secrets), rep.Overdue(), rep.PolicyErrors(), rep.At.Format(time.RFC3339))
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

// notMoved counts the readers whose last read was not of the latest version.
func notMoved(cs []rotation.ConsumerView) int {
	n := 0
	for _, c := range cs {
		if !c.Current {
			n++
		}
	}
	return n
}

// printEmergencies lists the leak responses on record, open ones marked.
func printEmergencies(w io.Writer, rep rotation.StatusReport) {
	header := false
	for _, s := range rep.Secrets {
		for i, em := range s.Emergencies {
			if !header {
				fmt.Fprintln(w, "\nLeak responses (emergencies):")
				header = true
			}
			state := "done"
			if s.OpenEmergency && i == len(s.Emergencies)-1 {
				state = "OPEN"
			}
			fmt.Fprintf(w, "  %s %s/%s %s (%s): %s\n", state, s.Vault, s.Secret, em.At.UTC().Format(time.RFC3339), em.Source, em.Done)
		}
	}
}

// printConsumers lists each managed secret's readers from Key Vault's audit log (when configured).
func printConsumers(w io.Writer, rep rotation.StatusReport) {
	header := false
	for _, s := range rep.Secrets {
		if !s.Managed || len(s.Consumers) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nConsumers (readers in Key Vault's audit log):")
			header = true
		}
		fmt.Fprintf(w, "  %s/%s: %d reader(s), %d not on the latest version\n", s.Vault, s.Secret, len(s.Consumers), notMoved(s.Consumers))
		for _, c := range s.Consumers {
			state := "current  "
			if !c.Current {
				state = "NOT MOVED"
			}
			who := c.Reader
			if c.AppID != "" && c.AppID != c.Reader {
				who += " (app " + c.AppID + ")"
			}
			if c.Address != "" {
				who += " from " + c.Address
			}
			ver := ""
			if c.Version != "" {
				ver = ", version " + c.Version
			}
			fmt.Fprintf(w, "    %s %s, last read %s%s\n", state, who, c.Last.UTC().Format(time.RFC3339), ver)
		}
	}
}

func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var at string
	a, o, rest, code := opsApp("plan", "plan [--json] [--at TIME] [--vaults LIST]", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&at, "at", "", "plan as of `TIME` (RFC 3339 or a date) instead of now")
	})
	if code >= 0 {
		return code
	}
	defer a.close()
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "kvrotator plan: unexpected argument %q\n", rest[0])
		return exitUsage
	}
	t, err := parseAt(at)
	if err != nil {
		fmt.Fprintf(stderr, "kvrotator plan: %v\n", err)
		return exitUsage
	}
	rep := a.engine.Status(ctx, t)
	if o.jsonOut {
		writeJSON(stdout, rep)
		return statusExit(rep)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VAULT\tSECRET\tPROVIDER\tEXPIRES\tROTATE AT\tNEXT SWEEP WOULD")
	var problems []string
	for _, s := range rep.Secrets {
		if !s.Managed {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Vault, s.Secret, dash(s.Provider), when(s.Expires, rep.At), when(s.RotateAt, rep.At), s.Action)
		if s.PolicyError != "" {
			problems = append(problems, fmt.Sprintf("%s/%s: %s", s.Vault, s.Secret, s.PolicyError))
		}
	}
	_ = tw.Flush()
	unmanaged := 0
	for _, s := range rep.Secrets {
		if !s.Managed {
			unmanaged++
		}
	}
	fmt.Fprintf(stdout, "\n%d managed, %d unmanaged (as of %s)\n", len(rep.Secrets)-unmanaged, unmanaged, rep.At.Format(time.RFC3339))
	printConsumers(stdout, rep)
	printEmergencies(stdout, rep)
	if len(problems) > 0 {
		fmt.Fprintln(stdout, "\nTags to fix:")
		for _, p := range problems {
			fmt.Fprintln(stdout, "  "+p)
		}
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(stdout, "error: %s\n", e)
	}
	return statusExit(rep)
}

func runRotate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var dryRun, override bool
	a, o, rest, code := opsApp("rotate", "rotate VAULT SECRET [--dry-run] [--override] [--json] [--vaults LIST]", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "say what would happen; change nothing")
		fs.BoolVar(&override, "override", false, "ignore the rotation window, the minimum interval and the back-to-back guard "+
			"(an emergency: consumers of the previous version's slot or login break)")
	})
	if code >= 0 {
		return code
	}
	defer a.close()
	if len(rest) != 2 {
		fmt.Fprintln(stderr, "kvrotator rotate: want VAULT SECRET (flags before them)")
		return exitUsage
	}
	out := a.engine.Rotate(ctx, rotation.Request{Vault: rest[0], Secret: rest[1], Trigger: rotation.TriggerManual, Force: true, DryRun: dryRun, Override: override})
	if o.jsonOut {
		writeJSON(stdout, out)
	} else {
		fmt.Fprintln(stdout, describeOutcome(out))
	}
	return outcomeExit(out)
}

func outcomeExit(o rotation.Outcome) int {
	switch {
	case o.Transient():
		return exitTransient
	case o.Failed(), o.Conflict:
		return exitProblem
	}
	return exitOK
}

func describeOutcome(o rotation.Outcome) string {
	s := fmt.Sprintf("%s %s/%s", o.Kind, o.Vault, o.Secret)
	if o.OldVersion != "" {
		s += " " + short(o.OldVersion)
	}
	if o.NewVersion != "" {
		s += " → " + short(o.NewVersion)
	}
	if o.Class != "" {
		s += " (" + string(o.Class) + ")"
	}
	if o.Reason != "" {
		s += ": " + o.Reason
	}
	return s
}

func runSweep(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var dryRun, quiet bool
	fsExtra := func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "say what would happen; change nothing")
		fs.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	}
	a, o, rest, code := opsApp("sweep", "sweep [--dry-run] [--json] [--quiet] [--vaults LIST]", args, stderr, fsExtra)
	if code >= 0 {
		return code
	}
	defer a.close()
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "kvrotator sweep: unexpected argument %q\n", rest[0])
		return exitUsage
	}
	if !quiet {
		a.progress.set(func(out rotation.Outcome) { fmt.Fprintln(stderr, "  "+describeOutcome(out)) })
		fmt.Fprintf(stderr, "sweeping %s…\n", strings.Join(a.engine.Vaults(), ", "))
	}
	rep := a.engine.Sweep(ctx, rotation.TriggerManual, dryRun)
	if o.jsonOut {
		writeJSON(stdout, rep)
	} else {
		for _, out := range rep.Outcomes {
			fmt.Fprintln(stdout, describeOutcome(out))
		}
		fmt.Fprintf(stdout, "%d secrets scanned, %d managed, %d outcomes, %d failed\n", rep.Scanned, rep.Managed, len(rep.Outcomes), rep.Failed())
	}
	transient, problem := false, false
	for _, out := range rep.Outcomes {
		switch {
		case out.Transient():
			transient = true
		case out.Failed(), out.Kind == rotation.KindOverdue:
			problem = true
		}
	}
	switch {
	case problem:
		return exitProblem
	case transient:
		return exitTransient
	}
	return exitOK
}

// progressPublisher forwards outcomes as they happen to a callback (the sweep's progress lines).
type progressPublisher struct {
	mu sync.Mutex
	fn func(rotation.Outcome)
}

func (p *progressPublisher) set(fn func(rotation.Outcome)) {
	p.mu.Lock()
	p.fn = fn
	p.mu.Unlock()
}

func (p *progressPublisher) Publish(_ context.Context, o rotation.Outcome) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fn != nil {
		p.fn(o)
	}
	return nil
}

func short(version string) string {
	if len(version) > 8 {
		return version[:8]
	}
	return dash(version)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// when renders a time as a date with how far it is from now.
func when(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	d := t.Sub(now)
	days := int(d.Round(24*time.Hour).Hours() / 24)
	rel := fmt.Sprintf("in %dd", days)
	if d < 0 {
		rel = fmt.Sprintf("%dd ago", -days)
	}
	return t.UTC().Format("2006-01-02") + " (" + rel + ")"
}
