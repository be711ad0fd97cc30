package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func (a *cli) domainsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "domains [APP]",
		Short: "List, add and remove the domains attached to apps",
		Long: `Domains attached here are served beside the ones an app's pier.yaml lists,
and are meant for many: a publisher's tens of thousands of customer domains,
added in one batch from a file. A host belongs to one app: adding a host that
another app has (here or in its manifest) fails with nothing changed, as does
an invalid host. Adding and removing domains does not pause traffic.
Without APP, lists every app's domains.`,
		Example: `  pier domains
  pier domains shop --json
  pier domains add shop www.bakery-lyon.fr "*.shops.example.com"
  pier domains add shop -f domains.txt     # one host a line; - reads stdin
  pier domains remove shop www.bakery-lyon.fr`,
		Args: maxArgs(1),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			app := ""
			if len(args) == 1 {
				app = args[0]
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ds, err := c.Domains(cmd.Context(), app)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(ds)
			}
			if len(ds) == 0 {
				fmt.Fprintln(a.stdout, `No domains attached. Add some with "pier domains add APP HOST..." or "-f FILE".`)
				return nil
			}
			tw := table(a.stdout)
			fmt.Fprintln(tw, "HOST\tAPP")
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s\n", d.Host, d.App)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	batch := func(use, short, verb string, remove bool) *cobra.Command {
		var file string
		c := &cobra.Command{
			Use:   use + " APP [HOST...]",
			Short: short,
			Args:  minArgs(1, "an APP and hosts (as arguments, or one a line with -f FILE, - for stdin)"),
			RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
				app, hosts := args[0], args[1:]
				if file != "" {
					more, err := readHosts(cmd.InOrStdin(), file)
					if err != nil {
						return err
					}
					hosts = append(hosts, more...)
				}
				if len(hosts) == 0 {
					return usagef("%s needs hosts: as arguments, or one a line with -f FILE (- for stdin)", cmd.CommandPath())
				}
				client, err := a.client()
				if err != nil {
					return err
				}
				if remove {
					ch, err := client.RemoveDomains(cmd.Context(), app, hosts)
					if err != nil {
						return err
					}
					fmt.Fprintf(a.stdout, "Removed %d domain(s) from %s; it has %d now.\n", ch.Removed, app, ch.Total)
					return nil
				}
				ch, err := client.AddDomains(cmd.Context(), app, hosts)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Added %d domain(s) to %s (%d already there); it has %d now.\n", ch.Added, app, ch.Unchanged, ch.Total)
				return nil
			}),
		}
		if remove {
			c.Aliases = []string{"rm"}
		}
		c.Flags().StringVarP(&file, "file", "f", "", "read hosts "+verb+" from FILE, one a line (# comments; - for stdin)")
		return c
	}
	cmd.AddCommand(
		batch("add", "Attach hosts to an app, in one batch", "to add", false),
		batch("remove", "Detach hosts from an app, in one batch", "to remove", true),
	)
	return cmd
}

// readHosts reads one host a line from file ("-" = stdin), skipping blank
// lines and # comments.
func readHosts(stdin io.Reader, file string) ([]string, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("reading hosts: %w", err)
		}
		defer f.Close()
		r = f
	}
	var hosts []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			hosts = append(hosts, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading hosts from %s: %w", file, err)
	}
	return hosts, nil
}
