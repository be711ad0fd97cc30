package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *cli) drainsCmd() *cobra.Command {
	var (
		app    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "drains",
		Short: "List, add and remove an app's log drains",
		Long: `A drain receives every line the app's processes write, as they write them:
  syslog+tcp://host:port   RFC 5424 over TCP, octet-counted frames (RFC 6587);
                           APP-NAME is the app, PROCID the instance (web.1),
                           MSGID the process type (web)
  syslog+tls://host:port   the same over TLS
  https://host/path        POSTs of NDJSON batches, one log line a line
                           (http:// too; user:password@ for basic auth)
While a drain is down, the engine retries with backoff and keeps its latest
10,000 lines, dropping (and counting) older ones. Drains are kept in the
engine's store and survive restarts.`,
		Example: `  pier drains
  pier drains add syslog+tcp://logs.example.com:6514
  pier drains add https://user:secret@logs.example.com/ingest --app blog
  pier drains remove 3f9a2c1b7d0e`,
		Args: maxArgs(0),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, c, err := a.appClient(app)
			if err != nil {
				return err
			}
			ds, err := c.Drains(cmd.Context(), name)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(ds)
			}
			if len(ds) == 0 {
				fmt.Fprintf(a.stdout, "%s has no log drains. Add one with \"pier drains add syslog+tcp://host:port\" or an https:// URL.\n", name)
				return nil
			}
			tw := table(a.stdout)
			fmt.Fprintln(tw, "ID\tURL\tSENT\tDROPPED\tWAITING\tLAST ERROR")
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", d.ID, d.URL, d.Sent, d.Dropped, d.Waiting, orDash(firstLine(d.LastError)))
			}
			return tw.Flush()
		}),
	}
	cmd.PersistentFlags().StringVar(&app, "app", "", "app name (default: the name in ./pier.yaml)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	add := &cobra.Command{
		Use:     "add URL",
		Short:   "Send the app's log lines to a syslog server or an HTTP(S) endpoint",
		Example: "  pier drains add syslog+tcp://logs.example.com:514\n  pier drains add https://logs.example.com/ingest",
		Args:    exactArgs(1, "the drain's URL: syslog+tcp://host:port, syslog+tls://host:port or https://..."),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, c, err := a.appClient(app)
			if err != nil {
				return err
			}
			d, err := c.AddDrain(cmd.Context(), name, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Added drain %s to %s: %s\n", d.ID, name, d.URL)
			return nil
		}),
	}
	remove := &cobra.Command{
		Use:     "remove ID",
		Aliases: []string{"rm"},
		Short:   "Stop sending the app's log lines to a drain",
		Args:    exactArgs(1, "the drain's ID (see pier drains)"),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, c, err := a.appClient(app)
			if err != nil {
				return err
			}
			if err := c.RemoveDrain(cmd.Context(), name, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Removed drain %s from %s\n", args[0], name)
			return nil
		}),
	}
	cmd.AddCommand(add, remove)
	return cmd
}
