package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"pier/internal/api"
	"pier/internal/bundle"
)

func (a *cli) deployCmd() *cobra.Command {
	var app, canary, to string
	cmd := &cobra.Command{
		Use:   "deploy [DIR]",
		Short: "Build and release the app in DIR (default: the current directory)",
		Long: `Deploy packs DIR (honouring .pierignore), uploads it, and follows the build
and rollout live: the engine builds a new release, starts its instances, waits
for their health checks, then switches traffic to it. If anything fails the
old release keeps serving and deploy exits with status 1 and the log tail.

With --canary 10% the new release is a canary: it starts beside the current
release and gets that share of new clients (each client keeps its release
through the pier_canary cookie) while the current release keeps the rest.
pier promote makes the canary current; pier rollback ends it.

With --to staging the release goes to the app's staging copy instead, an app
of its own named APP-staging and served at APP-staging.<domain>, made on the
first such deploy with the app's config vars (change them with
pier env set --app APP-staging). Production's release and traffic are left
alone; pier promote --from staging then releases the staged build to
production.

The app name is --app, else "name" in DIR/pier.yaml, else DIR's name
(lower-cased, other characters turned into dashes). pier.yaml is checked
before anything is uploaded.`,
		Example: `  pier deploy
  pier deploy ./blog
  pier deploy ./site --app www
  pier deploy --canary 10%
  pier deploy --to staging`,
		Args: maxArgs(1),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			share, err := parseShare(canary)
			if err != nil {
				return err
			}
			if err := checkTo(to, share); err != nil {
				return err
			}
			return a.deploy(cmd.Context(), dir, app, share, to)
		}),
	}
	cmd.Flags().StringVar(&app, "app", "", "app name (default: pier.yaml's name, else the directory's)")
	cmd.Flags().StringVar(&canary, "canary", "", "deploy as a canary that gets this share of new clients (e.g. 10%)")
	cmd.Flags().StringVar(&to, "to", "", "deploy to the app's staging copy instead of production (only: staging)")
	return cmd
}

// errUploadEnded closes the bundle pipe once the deploy call has returned,
// so a still-running Pack stops.
var errUploadEnded = errors.New("upload ended")

// parseShare reads --canary: a percentage above 0 and below 100, with or
// without "%"; "" is 0 (no canary).
func parseShare(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	p, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || !(p > 0 && p < 100) {
		return 0, usagef("--canary %q: want a share of traffic above 0%% and below 100%%, such as 10%%", s)
	}
	return p, nil
}

func (a *cli) deploy(ctx context.Context, dir, appFlag string, canary float64, to string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	name, _, err := dirApp(dir, appFlag)
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	if canary > 0 {
		fmt.Fprintf(a.stdout, "-----> Deploying %s from %s to %s as a canary for %g%% of clients\n", name, dir, c.BaseURL, canary)
	} else if to != "" {
		fmt.Fprintf(a.stdout, "-----> Deploying %s from %s to %s, its staging copy on %s\n", name, dir, api.StagingApp(name), c.BaseURL)
	} else {
		fmt.Fprintf(a.stdout, "-----> Deploying %s from %s to %s\n", name, dir, c.BaseURL)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	packed := make(chan error, 1)
	go func() {
		err := bundle.Pack(ctx, dir, pw)
		pw.CloseWithError(err)
		packed <- err
	}()
	var done *api.Event
	shown := name
	p := a.progress()
	bundle := p.upload(pr)
	if canary > 0 {
		done, err = c.DeployCanary(ctx, name, bundle, canary, p.event)
	} else if to != "" {
		shown = api.StagingApp(name)
		done, err = c.DeployStaging(ctx, name, bundle, p.event)
	} else {
		done, err = c.Deploy(ctx, name, bundle, p.event)
	}
	p.stop()
	pr.CloseWithError(errUploadEnded)
	cancel()
	if perr := <-packed; perr != nil && !errors.Is(perr, errUploadEnded) && !errors.Is(perr, io.ErrClosedPipe) && !errors.Is(perr, context.Canceled) {
		return fmt.Errorf("packing %s: %w", dir, perr)
	}
	if err != nil {
		return deployFailed("deploy of "+shown, err)
	}
	p.done(context.WithoutCancel(ctx), c, shown, done)
	return nil
}

// deployFailed words a failed deploy, rollback or config change.
func deployFailed(what string, err error) error {
	var de *api.DeployError
	if errors.As(err, &de) {
		return fmt.Errorf("%s failed; the previous release keeps serving: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// printEvent shows one progress event the way Heroku-style tools do: steps
// after an arrow, build output indented under them.
func (a *cli) printEvent(ev api.Event) {
	switch ev.Type {
	case api.EventDone, api.EventError:
		// The caller reports the outcome.
	case api.EventLog:
		for _, line := range strings.Split(strings.TrimRight(ev.Message, "\n"), "\n") {
			fmt.Fprintf(a.stdout, "       %s\n", line)
		}
	default:
		msg := ev.Message
		if msg == "" {
			msg = defaultEventMessage(ev)
		}
		fmt.Fprintf(a.stdout, "-----> %s\n", msg)
	}
}

// defaultEventMessage words an event the engine sent without a message.
func defaultEventMessage(ev api.Event) string {
	v := fmt.Sprintf("v%d", ev.Release)
	switch ev.Type {
	case api.EventBuild:
		return "Building " + v
	case api.EventStart:
		return "Starting " + v
	case api.EventHealth:
		return "Health check of " + v
	case api.EventSwap:
		return "Routing to " + v
	case api.EventDrain:
		return "Draining the previous release"
	case api.EventStop:
		return "Stopped the previous release"
	}
	return ev.Type
}

// printDone prints the closing line with the app's address, when the engine
// tells it, and took (progress.done: the time it took, on a terminal).
func (a *cli) printDone(ctx context.Context, c *api.Client, app string, done *api.Event, took string) {
	line := fmt.Sprintf("-----> Done: v%d", done.Release)
	if info, err := c.App(ctx, app); err == nil && len(info.URLs) > 0 {
		line += " at " + info.URLs[0]
	}
	fmt.Fprintln(a.stdout, line+took)
}

func (a *cli) rollbackCmd() *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "rollback [vN|N]",
		Short: "Go back to an earlier release (default: the one before the current)",
		Long: `Rollback makes a new release from an earlier one's bundle, build and config
and rolls it out like a deploy: the current release serves until the new one
is healthy. Without an argument it returns to the release before the current,
unless the app has a canary (pier deploy --canary): then it ends the canary,
sending every client back to the current release and stopping the canary.`,
		Example: `  pier rollback
  pier rollback v3 --app blog`,
		Args: maxArgs(1),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			release := 0
			if len(args) == 1 {
				n, err := parseRelease(args[0])
				if err != nil {
					return err
				}
				release = n
			}
			name, c, err := a.appClient(app)
			if err != nil {
				return err
			}
			target := "the previous release"
			if release > 0 {
				target = fmt.Sprintf("v%d", release)
			}
			fmt.Fprintf(a.stdout, "-----> Rolling %s back to %s\n", name, target)
			p := a.progress()
			done, err := c.Rollback(cmd.Context(), name, release, p.event)
			if err != nil {
				return deployFailed("rollback of "+name, err)
			}
			p.done(cmd.Context(), c, name, done)
			return nil
		}),
	}
	cmd.Flags().StringVar(&app, "app", "", "app name (default: the name in ./pier.yaml)")
	return cmd
}

func (a *cli) promoteCmd() *cobra.Command {
	var app, from string
	cmd := &cobra.Command{
		Use:   "promote [APP]",
		Short: "Make the app's canary, or its staged release, its current release",
		Long: `Promote ends a canary started with pier deploy --canary: the canary release
gets all the traffic and its other processes start; the previous release is
drained of in-flight requests and stopped.

With --from staging it releases what the app's staging copy (pier deploy
--to staging) runs: a new release of the app from the same bundle, built
again with the app's own config vars, rolled out like a deploy (health checks
before the switch, in-flight requests drained after it). The staging copy
keeps running.`,
		Example: `  pier promote
  pier promote --app blog
  pier promote blog --from staging`,
		Args: maxArgs(1),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if app != "" && app != args[0] {
					return usagef("promote %s --app %s: name the app once", args[0], app)
				}
				app = args[0]
			}
			if from != "" && from != api.Staging {
				return usagef("--from %q: the only environment to promote from is %s", from, api.Staging)
			}
			name, c, err := a.appClient(app)
			if err != nil {
				return err
			}
			var done *api.Event
			p := a.progress()
			if from != "" {
				fmt.Fprintf(a.stdout, "-----> Promoting %s, the staging copy, to %s\n", api.StagingApp(name), name)
				done, err = c.PromoteFrom(cmd.Context(), name, from, p.event)
			} else {
				fmt.Fprintf(a.stdout, "-----> Promoting the canary of %s\n", name)
				done, err = c.Promote(cmd.Context(), name, p.event)
			}
			if err != nil {
				return deployFailed("promote of "+name, err)
			}
			p.done(cmd.Context(), c, name, done)
			return nil
		}),
	}
	cmd.Flags().StringVar(&app, "app", "", "app name (default: the name in ./pier.yaml)")
	cmd.Flags().StringVar(&from, "from", "", "promote the release of the app's staging copy (only: staging) instead of its canary")
	return cmd
}

// checkTo reads deploy --to: "" (production) or "staging", never with a
// canary.
func checkTo(to string, canary float64) error {
	switch {
	case to != "" && to != api.Staging:
		return usagef("--to %q: the only environment besides production is %s (deploy without --to for production)", to, api.Staging)
	case to != "" && canary > 0:
		return usagef("--to staging and --canary do not go together: a staging copy takes no share of production's clients")
	}
	return nil
}

func (a *cli) envCmd() *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "env",
		Short: "List and change an app's config vars",
		Long: `Config vars are environment variables given to every process of the app, on
top of the manifest's env. Changing them makes a new release, rolled out like
a deploy.`,
		Example: `  pier env list
  pier env set DATABASE_URL=postgres://db/blog LOG_LEVEL=debug
  pier env unset LOG_LEVEL --app blog`,
	}
	cmd.PersistentFlags().StringVar(&app, "app", "", "app name (default: the name in ./pier.yaml)")

	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "Print the app's config vars as KEY=value",
		Args:    maxArgs(0),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, c, err := a.appClient(app)
			if err != nil {
				return err
			}
			env, err := c.Env(cmd.Context(), name)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(env)
			}
			for _, k := range slices.Sorted(maps.Keys(env)) {
				fmt.Fprintf(a.stdout, "%s=%s\n", k, env[k])
			}
			return nil
		}),
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	set := &cobra.Command{
		Use:     "set KEY=VALUE...",
		Short:   "Set config vars and release the app with them",
		Example: `  pier env set SECRET_KEY=abc DEBUG=`,
		Args:    minArgs(1, "at least one KEY=VALUE"),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			vars, err := parseEnvSet(args)
			if err != nil {
				return err
			}
			return a.changeEnv(cmd.Context(), app, api.EnvChange{Set: vars})
		}),
	}
	unset := &cobra.Command{
		Use:     "unset KEY...",
		Short:   "Remove config vars and release the app without them",
		Example: `  pier env unset DEBUG`,
		Args:    minArgs(1, "at least one KEY"),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			keys, err := parseEnvUnset(args)
			if err != nil {
				return err
			}
			return a.changeEnv(cmd.Context(), app, api.EnvChange{Unset: keys})
		}),
	}
	cmd.AddCommand(list, set, unset)
	return cmd
}

func (a *cli) changeEnv(ctx context.Context, appFlag string, change api.EnvChange) error {
	name, c, err := a.appClient(appFlag)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "-----> Updating the config of %s\n", name)
	p := a.progress()
	done, err := c.SetEnv(ctx, name, change, p.event)
	if err != nil {
		return deployFailed("config change of "+name, err)
	}
	p.done(ctx, c, name, done)
	return nil
}

// printJSON writes v as indented JSON.
func (a *cli) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
