package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"pier/internal/api"
)

// orDash prints 0 and "" as "-".
func orDash[T comparable](v T) string {
	var zero T
	if v == zero {
		return "-"
	}
	return fmt.Sprint(v)
}

// formatScale prints a scale map as "web=2 worker=1", sorted.
func formatScale(scale map[string]int) string {
	if len(scale) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(scale))
	for _, p := range slices.Sorted(maps.Keys(scale)) {
		parts = append(parts, fmt.Sprintf("%s=%d", p, scale[p]))
	}
	return strings.Join(parts, " ")
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func release(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("v%d", n)
}

func (a *cli) appsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "apps",
		Short:   "List the apps the engine runs",
		Example: "  pier apps\n  pier apps --json",
		Args:    maxArgs(0),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			apps, err := c.Apps(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(apps)
			}
			if len(apps) == 0 {
				fmt.Fprintln(a.stdout, `No apps yet. Create one with "pier new NAME --lang python" and "pier deploy".`)
				return nil
			}
			tw := table(a.stdout)
			fmt.Fprintln(tw, "NAME\tRELEASE\tSTATUS\tSCALE\tURL")
			for _, app := range apps {
				url := "-"
				if len(app.URLs) > 0 {
					url = app.URLs[0]
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", app.Name, release(app.Release), orDash(app.Status), formatScale(app.Scale), url)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *cli) releasesCmd() *cobra.Command {
	var (
		app    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:     "releases",
		Short:   "List an app's releases, newest first",
		Long:    "Every deploy, config change and rollback makes a release; any of them can be rolled back to.",
		Example: "  pier releases\n  pier releases --app blog --json",
		Args:    maxArgs(0),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, c, err := a.appClient(app)
			if err != nil {
				return err
			}
			rs, err := c.Releases(cmd.Context(), name)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(rs)
			}
			if len(rs) == 0 {
				fmt.Fprintf(a.stdout, "%s has no releases yet: run \"pier deploy\".\n", name)
				return nil
			}
			tw := table(a.stdout)
			fmt.Fprintln(tw, "RELEASE\tSTATUS\tKIND\tCAUSE\tCREATED\tERROR")
			for _, r := range rs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", release(r.Number), orDash(r.Status), orDash(r.Kind),
					orDash(r.Cause), formatTime(r.Created), firstLine(r.Error))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().StringVar(&app, "app", "", "app name (default: the name in ./pier.yaml)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// firstLine keeps a table cell on one line.
func firstLine(s string) string {
	line, _, cut := strings.Cut(s, "\n")
	if cut {
		line += " ..."
	}
	return line
}

func (a *cli) psCmd() *cobra.Command {
	var (
		app    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List an app's running instances",
		Long: `ps lists every instance of the app with its state, then those of its staging
copy (pier deploy --to staging) if it has one. An instance in CRASH-LOOP
keeps exiting soon after it starts; the supervisor waits longer and longer
between restarts. "pier logs --process TYPE" usually says why.`,
		Example: "  pier ps\n  pier ps --app blog --json",
		Args:    maxArgs(0),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, c, err := a.appClient(app)
			if err != nil {
				return err
			}
			is, err := c.PS(cmd.Context(), name)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(is)
			}
			a.printPS(name, is)
			// The staging copy (pier deploy --to staging) is an app of its
			// own; its instances are shown under the app's.
			if info, err := c.App(cmd.Context(), name); err == nil && info.Staging != "" {
				if sis, err := c.PS(cmd.Context(), info.Staging); err == nil {
					fmt.Fprintf(a.stdout, "\nStaging copy %s:\n", info.Staging)
					a.printPS(info.Staging, sis)
				}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&app, "app", "", "app name (default: the name in ./pier.yaml)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *cli) printPS(app string, is []api.Instance) {
	if len(is) == 0 {
		fmt.Fprintf(a.stdout, "%s has no instances: deploy it, or scale it with \"pier scale web=1\".\n", app)
		return
	}
	tw := table(a.stdout)
	fmt.Fprintln(tw, "INSTANCE\tRELEASE\tSTATE\tRESTARTS\tPORT\tPID\tLIMITS")
	var crashing []api.Instance
	for _, in := range is {
		state := in.State
		if state == "crash-loop" || state == "failed" {
			state = strings.ToUpper(state)
			crashing = append(crashing, in)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", orDash(in.Instance), release(in.Release), orDash(state),
			in.Restarts, orDash(in.Port), orDash(in.PID), orDash(in.Limits))
	}
	tw.Flush()
	for _, in := range crashing {
		what := "keeps crashing; pier waits longer and longer between restarts"
		if in.State == "failed" {
			what = "failed and is not restarted any more"
		}
		detail := fmt.Sprintf("%d restarts", in.Restarts)
		if in.LastExit != "" {
			detail += ", last exit: " + in.LastExit
		}
		fmt.Fprintf(a.stdout, "\n! %s %s (%s).\n  See why: pier logs --app %s --process %s\n", in.Instance, what, detail, app, in.Process)
	}
}

func (a *cli) scaleCmd() *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "scale PROCESS=N...",
		Short: "Set how many instances of each process type run",
		Long: `Scale sets the number of instances per process type; 0 stops a type.
New instances start right away and take traffic once healthy.`,
		Example: "  pier scale web=3\n  pier scale web=2 worker=1 --app blog",
		Args:    minArgs(1, "at least one PROCESS=N, e.g. web=3"),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			scale, err := parseScale(args)
			if err != nil {
				return err
			}
			name, c, err := a.appClient(app)
			if err != nil {
				return err
			}
			got, err := c.Scale(cmd.Context(), name, scale)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Scaled %s: %s\n", name, formatScale(got.Scale))
			return nil
		}),
	}
	cmd.Flags().StringVar(&app, "app", "", "app name (default: the name in ./pier.yaml)")
	return cmd
}

func (a *cli) logsCmd() *cobra.Command {
	var (
		app    string
		opts   api.LogOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Print an app's logs",
		Long: `Logs prints the app's recent log lines, oldest first, as
"TIME app[INSTANCE]: TEXT"; lines pier itself wrote about the app (starts,
exits, health checks) read "pier[INSTANCE]". With -f it keeps printing new
lines until interrupted. With --json, each line is one JSON object (NDJSON):
time, app, release, process, instance, stream, text.`,
		Example: "  pier logs\n  pier logs -f --process web\n  pier logs -n 500 --app blog\n  pier logs --since 1h --grep 'Traceback|ERROR'",
		Args:    maxArgs(0),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			if opts.Lines < 0 {
				return usagef("-n must be at least 0")
			}
			name, c, err := a.appClient(app)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			err = c.Logs(cmd.Context(), name, opts, func(l api.LogLine) {
				if asJSON {
					enc.Encode(l)
					return
				}
				fmt.Fprintln(a.stdout, formatLogLine(l))
			})
			if opts.Follow && errors.Is(err, context.Canceled) {
				return nil // interrupted: the normal end of following
			}
			return err
		}),
	}
	f := cmd.Flags()
	f.StringVar(&app, "app", "", "app name (default: the name in ./pier.yaml)")
	f.BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new lines")
	f.StringVar(&opts.Process, "process", "", "only this process type, e.g. web")
	f.IntVarP(&opts.Lines, "lines", "n", 100, "number of recent lines to print first")
	f.DurationVar(&opts.Since, "since", 0, "only lines from this long ago on, e.g. 10m")
	f.StringVar(&opts.Grep, "grep", "", "only lines matching this regular expression (filtered by the engine)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per line (NDJSON)")
	return cmd
}

// formatLogLine prints "2026-11-21T20:00:00Z app[web.1]: text".
func formatLogLine(l api.LogLine) string {
	source := "app"
	if l.Stream == "pier" {
		source = "pier"
	}
	who := l.Instance
	if who == "" {
		who = l.Process
	}
	return fmt.Sprintf("%s %s[%s]: %s", l.Time.UTC().Format(time.RFC3339), source, who, l.Text)
}
