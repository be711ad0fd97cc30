package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// The error tracker's API answers, as far as the CLI reads them (the full
// shapes are internal/errortrack's Issue, IssueDetail and Config).
type (
	errIssue struct {
		ID          string                      `json:"id"`
		App         string                      `json:"app"`
		Title       string                      `json:"title"`
		Culprit     string                      `json:"culprit"`
		Level       string                      `json:"level"`
		Status      string                      `json:"status"`
		Regression  bool                        `json:"regression"`
		ResolvedIn  string                      `json:"resolved_in"`
		Count       int64                       `json:"count"`
		Users       int                         `json:"users"`
		FirstSeen   time.Time                   `json:"first_seen"`
		LastSeen    time.Time                   `json:"last_seen"`
		FirstRel    string                      `json:"first_release"`
		LastRel     string                      `json:"last_release"`
		GroupedBy   string                      `json:"grouped_by"`
		Environment []string                    `json:"environments"`
		Tags        map[string]map[string]int64 `json:"tags"`
	}
	errFrame struct {
		Filename    string `json:"filename"`
		AbsPath     string `json:"abs_path"`
		Function    string `json:"function"`
		Module      string `json:"module"`
		Lineno      int    `json:"lineno"`
		InApp       *bool  `json:"in_app"`
		ContextLine string `json:"context_line"`
	}
	errEvent struct {
		ID         string    `json:"id"`
		Timestamp  time.Time `json:"timestamp"`
		Release    string    `json:"release"`
		Source     string    `json:"source"`
		Message    string    `json:"message"`
		Exceptions []struct {
			Type   string     `json:"type"`
			Value  string     `json:"value"`
			Frames []errFrame `json:"frames"`
		} `json:"exceptions"`
		Breadcrumbs []struct {
			Timestamp time.Time `json:"timestamp"`
			Category  string    `json:"category"`
			Message   string    `json:"message"`
		} `json:"breadcrumbs"`
		Tags map[string]string `json:"tags"`
		User *struct {
			ID, Email, Username string
		} `json:"user"`
		Output string `json:"output"`
	}
	errDetail struct {
		Issue  errIssue   `json:"issue"`
		Events []errEvent `json:"events"`
	}
)

func (a *cli) errorsCmd() *cobra.Command {
	var (
		app, status string
		asJSON      bool
		limit       int
		cursor      string
	)
	cmd := &cobra.Command{
		Use:   "errors [APP]",
		Short: "List an app's errors, grouped into issues",
		Long: `Errors lists the app's issues, most recently seen first: errors its Sentry SDK
sent to the SENTRY_DSN pier gives every process, and crashes pier read in its
output (Python tracebacks, Go panics, Node uncaught exceptions). By default
only unresolved issues; --status resolved|ignored|all for the others. It
shows --limit issues at a time and, when more follow, the --cursor that
shows the next ones.`,
		Example: `  pier errors
  pier errors blog --status all
  pier errors show 3f9a2c1b7d0e
  pier errors resolve 3f9a2c1b7d0e
  pier errors config --webhook https://hooks.example.com/pier --alerts-per-hour 10
  pier errors config --retention-days 7`,
		Args: maxArgs(1),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, err := a.appArgName(args, app)
			if err != nil {
				return err
			}
			var issues []errIssue
			q := url.Values{"status": {status}, "limit": {strconv.Itoa(limit)}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			if err := a.errorsAPI(cmd.Context(), "GET", "/v1/apps/"+url.PathEscape(name)+"/errors?"+q.Encode(), nil, &issues); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(issues)
			}
			if len(issues) == 0 {
				fmt.Fprintf(a.stdout, "No %s issues for %s.\n", strings.ReplaceAll(status, "all", "tracked"), name)
				return nil
			}
			tw := table(a.stdout)
			fmt.Fprintln(tw, "ID\tSTATUS\tEVENTS\tUSERS\tLAST SEEN\tRELEASE\tTITLE")
			for _, is := range issues {
				st := is.Status
				if is.Regression {
					st += " (regression)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", is.ID, st, is.Count, is.Users,
					ago(is.LastSeen), orDash(is.LastRel), clipText(is.Title, 80))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(issues) == limit {
				// The API's cursor is the last issue's position: when it
				// was last seen, and its id.
				last := issues[len(issues)-1]
				fmt.Fprintf(a.stdout, "More: pier errors %s --status %s --cursor %d-%s\n", name, status, last.LastSeen.UnixNano(), last.ID)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&app, "app", "", "the app (default: the name in ./pier.yaml)")
	cmd.Flags().StringVar(&status, "status", "unresolved", "unresolved, resolved, ignored or all")
	cmd.Flags().IntVar(&limit, "limit", 100, "issues shown at a time (at most 1000)")
	cmd.Flags().StringVar(&cursor, "cursor", "", "show the issues after this position (the More: line of the previous page)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(a.errorsShowCmd(), a.errorsStatusCmd("resolve"), a.errorsStatusCmd("ignore"),
		a.errorsStatusCmd("unresolve"), a.errorsConfigCmd(), a.errorsDSNCmd())
	return cmd
}

func (a *cli) errorsShowCmd() *cobra.Command {
	var (
		events int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:     "show ID",
		Short:   "Show an issue and its latest event with the stack trace",
		Example: "  pier errors show 3f9a2c1b7d0e\n  pier errors show 3f9a2c1b7d0e --events 5 --json",
		Args:    exactArgs(1, "an issue ID"),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			var d errDetail
			path := fmt.Sprintf("/v1/errors/%s?events=%d", url.PathEscape(args[0]), events)
			if err := a.errorsAPI(cmd.Context(), "GET", path, nil, &d); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(d)
			}
			a.printIssue(d)
			return nil
		}),
	}
	cmd.Flags().IntVar(&events, "events", 1, "how many of the latest events to show (at most 100)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *cli) printIssue(d errDetail) {
	is, w := d.Issue, a.stdout
	fmt.Fprintf(w, "%s  %s\n", is.ID, is.Title)
	st := is.Status
	if is.Regression {
		st += ", regression"
	}
	if is.ResolvedIn != "" {
		st += ", resolved in " + is.ResolvedIn
	}
	fmt.Fprintf(w, "app %s · %s · %d events · %d users · grouped by %s\n", is.App, st, is.Count, is.Users, is.GroupedBy)
	fmt.Fprintf(w, "first seen %s (%s) · last seen %s (%s)\n", formatTime(is.FirstSeen), orDash(is.FirstRel), formatTime(is.LastSeen), orDash(is.LastRel))
	if is.Culprit != "" {
		fmt.Fprintf(w, "culprit: %s\n", is.Culprit)
	}
	for _, ev := range d.Events {
		fmt.Fprintf(w, "\nevent %s at %s, release %s, from %s\n", ev.ID, formatTime(ev.Timestamp), orDash(ev.Release), ev.Source)
		if ev.Message != "" {
			fmt.Fprintf(w, "  message: %s\n", ev.Message)
		}
		for i := len(ev.Exceptions) - 1; i >= 0; i-- { // the one raised last first
			ex := ev.Exceptions[i]
			fmt.Fprintf(w, "  %s: %s\n", ex.Type, ex.Value)
			for j := len(ex.Frames) - 1; j >= 0; j-- { // innermost call first
				f := ex.Frames[j]
				file := f.Filename
				if file == "" {
					file = f.AbsPath
				}
				mark := " "
				if f.InApp != nil && *f.InApp {
					mark = "*"
				}
				fmt.Fprintf(w, "   %s %s in %s:%d\n", mark, orDash(f.Function), file, f.Lineno)
				if f.ContextLine != "" {
					fmt.Fprintf(w, "        %s\n", strings.TrimSpace(f.ContextLine))
				}
			}
		}
		if ev.User != nil {
			fmt.Fprintf(w, "  user: %s\n", strings.TrimSpace(strings.Join([]string{ev.User.ID, ev.User.Email, ev.User.Username}, " ")))
		}
		if len(ev.Tags) > 0 {
			var tags []string
			for k, v := range ev.Tags {
				tags = append(tags, k+"="+v)
			}
			fmt.Fprintf(w, "  tags: %s\n", strings.Join(sortedStrings(tags), " "))
		}
		if n := len(ev.Breadcrumbs); n > 0 {
			fmt.Fprintln(w, "  breadcrumbs:")
			for _, b := range ev.Breadcrumbs[max(0, n-10):] {
				fmt.Fprintf(w, "    %s %s %s\n", b.Timestamp.UTC().Format("15:04:05"), orDash(b.Category), b.Message)
			}
		}
	}
}

func (a *cli) errorsStatusCmd(action string) *cobra.Command {
	var app string
	return &cobra.Command{
		Use:   action + " ID",
		Short: map[string]string{"resolve": "Mark an issue resolved (a newer release that hits it again makes it a regression)", "ignore": "Ignore an issue: it keeps counting but never alerts", "unresolve": "Reopen an issue"}[action],
		Args:  exactArgs(1, "an issue ID"),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if app == "" {
				var d errDetail
				if err := a.errorsAPI(cmd.Context(), "GET", "/v1/errors/"+url.PathEscape(id)+"?events=0", nil, &d); err != nil {
					return err
				}
				app = d.Issue.App
			}
			var is errIssue
			if err := a.errorsAPI(cmd.Context(), "POST", "/v1/apps/"+url.PathEscape(app)+"/errors/"+url.PathEscape(id)+"/"+action, nil, &is); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s %s: %s\n", is.ID, is.Status, is.Title)
			return nil
		}),
	}
}

func (a *cli) errorsConfigCmd() *cobra.Command {
	var (
		app     string
		webhook string
		perHour int
		rate    float64
		burst   int
		days    int
		issues  int
	)
	cmd := &cobra.Command{
		Use:   "config [APP]",
		Short: "Show or change an app's alert webhook and limits",
		Long: `Config prints the app's error-tracking settings; with flags it changes them.
The webhook gets a JSON POST for every new issue and regression, at most
--alerts-per-hour an hour. --rate and --burst bound the events the app may
send (past them its SDK gets 429 and backs off). --retention-days is how
long its events are kept (the issues keep counting them), --max-issues how
many issues (the least recently seen go first); 0 is the engine's default
(pier up --errors-retention, 10000 issues).`,
		Example: "  pier errors config\n  pier errors config blog --webhook https://hooks.example.com/x --alerts-per-hour 5",
		Args:    maxArgs(1),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, err := a.appArgName(args, app)
			if err != nil {
				return err
			}
			path := "/v1/apps/" + url.PathEscape(name) + "/errors/config"
			cfg := map[string]any{}
			if err := a.errorsAPI(cmd.Context(), "GET", path, nil, &cfg); err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("webhook") || f.Changed("alerts-per-hour") || f.Changed("rate") || f.Changed("burst") ||
				f.Changed("retention-days") || f.Changed("max-issues") {
				set := func(flag, key string, v any) {
					if f.Changed(flag) {
						cfg[key] = v
					}
				}
				set("webhook", "webhook", webhook)
				set("alerts-per-hour", "alerts_per_hour", perHour)
				set("rate", "rate_per_second", rate)
				set("burst", "burst", burst)
				set("retention-days", "retention_days", days)
				set("max-issues", "max_issues", issues)
				if err := a.errorsAPI(cmd.Context(), "PUT", path, cfg, &cfg); err != nil {
					return err
				}
			}
			return a.printJSON(cfg)
		}),
	}
	cmd.Flags().StringVar(&app, "app", "", "the app (default: the name in ./pier.yaml)")
	cmd.Flags().StringVar(&webhook, "webhook", "", `alert webhook URL ("" turns alerts off)`)
	cmd.Flags().IntVar(&perHour, "alerts-per-hour", 0, "cap on webhook calls (0 = 20)")
	cmd.Flags().Float64Var(&rate, "rate", 0, "events per second the app may send (0 = the engine's default)")
	cmd.Flags().IntVar(&burst, "burst", 0, "events the app may send at once (0 = the engine's default)")
	cmd.Flags().IntVar(&days, "retention-days", 0, "days the app's events are kept, at most 365 (0 = the engine's --errors-retention)")
	cmd.Flags().IntVar(&issues, "max-issues", 0, "issues kept, the least recently seen dropped first (0 = the engine's default, 10000)")
	return cmd
}

func (a *cli) errorsDSNCmd() *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "dsn [APP]",
		Short: "Print the SENTRY_DSN pier gives the app",
		Args:  maxArgs(1),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, err := a.appArgName(args, app)
			if err != nil {
				return err
			}
			var out struct {
				DSN string `json:"dsn"`
			}
			if err := a.errorsAPI(cmd.Context(), "GET", "/v1/apps/"+url.PathEscape(name)+"/errors/dsn", nil, &out); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, out.DSN)
			return nil
		}),
	}
	cmd.Flags().StringVar(&app, "app", "", "the app (default: the name in ./pier.yaml)")
	return cmd
}

// errorsAPI calls the error tracker's API with the CLI's address and
// token; failures come back as *api.APIError like every other command's.
func (a *cli) errorsAPI(ctx context.Context, method, path string, body, v any) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	var rd io.Reader
	contentType := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd, contentType = bytes.NewReader(b), "application/json"
	}
	return c.Call(ctx, method, path, rd, contentType, v)
}

// ago prints a time as "3m ago".
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func clipText(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func sortedStrings(ss []string) []string {
	slices.Sort(ss)
	return ss
}
