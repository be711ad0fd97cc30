package cli

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func (a *cli) runCmd() *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "run [APP] -- COMMAND [ARGS...]",
		Short: "Run a one-off command with an app's release and config",
		Long: `Run starts COMMAND once, next to the app's current release, with the same
environment its processes get (config vars, PIER_*, service addresses), and
prints its output. pier exits with the command's exit status.

The app is APP, else --app, else the name in ./pier.yaml. Everything after
"--" is the command, passed as is (no shell: use sh -c for pipes).`,
		Example: `  pier run blog -- python manage.py migrate
  pier run -- sh -c 'echo $DATABASE_URL'`,
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash < 0 {
				return usagef(`put the command after "--", e.g. pier run blog -- python manage.py migrate`)
			}
			before, command := args[:dash], args[dash:]
			if len(before) > 1 {
				return usagef("pier run takes one APP before \"--\", got %q", before)
			}
			if len(command) == 0 {
				return usagef(`give the command after "--"`)
			}
			flag := app
			if len(before) == 1 {
				if app != "" && app != before[0] {
					return usagef("two apps given: %q and --app %q", before[0], app)
				}
				flag = before[0]
			}
			name, err := a.appName(flag)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			code, err := c.Run(cmd.Context(), name, command, a.stdout, a.stderr)
			if err != nil {
				return fmt.Errorf("run in %s: %w", name, err)
			}
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&app, "app", "", "app name (default: the name in ./pier.yaml)")
	return cmd
}

func (a *cli) destroyCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "destroy APP",
		Short: "Delete an app with its releases, instances, config and logs",
		Long: `Destroy stops every instance of APP and deletes its releases, config vars,
routes and logs, and its staging copy (APP-staging) if it has one. It cannot
be undone. It asks you to type the app name unless --yes is given; without a
terminal to ask on, --yes is required.`,
		Example: "  pier destroy blog\n  pier destroy blog --yes",
		Args:    exactArgs(1, "the APP to destroy"),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !yes {
				in := cmd.InOrStdin()
				if !a.isTerminal(in) {
					return fmt.Errorf("not destroying %s: stdin is not a terminal to confirm on; pass --yes", name)
				}
				fmt.Fprintf(a.stderr, "This deletes %s with all its releases, config and logs. It cannot be undone.\nType the app name to confirm: ", name)
				line, err := bufio.NewReader(in).ReadString('\n')
				if strings.TrimSpace(line) != name {
					if err != nil {
						fmt.Fprintln(a.stderr)
					}
					return fmt.Errorf("confirmation did not match %q; nothing was destroyed", name)
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			// The engine destroys the app's staging copy with it; say so.
			var staging string
			if info, err := c.App(cmd.Context(), name); err == nil {
				staging = info.Staging
			}
			if err := c.Destroy(cmd.Context(), name); err != nil {
				return err
			}
			if staging != "" {
				fmt.Fprintf(a.stdout, "Destroyed %s and its staging copy %s.\n", name, staging)
				return nil
			}
			fmt.Fprintf(a.stdout, "Destroyed %s.\n", name)
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
