package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"
)

// The wire types of the tasks API (internal/tasks), as the CLI reads them.
type (
	queueFigures struct {
		Name      string  `json:"name"`
		Ready     int     `json:"ready"`
		Reserved  int     `json:"reserved"`
		Delayed   int     `json:"delayed"`
		Dead      int     `json:"dead"`
		Waiting   int     `json:"waiting"`
		Paused    bool    `json:"paused"`
		PauseLeft string  `json:"pause_left"`
		InRate    float64 `json:"enqueue_rate"`
		DoneRate  float64 `json:"done_rate"`
		FailRate  float64 `json:"fail_rate"`
		Config    struct {
			Push        string  `json:"push"`
			Rate        float64 `json:"rate"`
			Concurrency int     `json:"concurrency"`
			Attempts    int     `json:"attempts"`
		} `json:"config"`
	}
	deadTask struct {
		ID      uint64    `json:"id"`
		Queue   string    `json:"queue"`
		Body    []byte    `json:"body"`
		Name    string    `json:"name"`
		Created time.Time `json:"created"`
		Error   string    `json:"error"`
	}
)

func (a *cli) tasksCmd() *cobra.Command {
	var (
		app    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "List an app's task queues; add, retry and drop tasks",
		Long: `Tasks lists the app's queues with their ready, reserved (being worked on),
delayed and dead counts, and the rates (per second over the last minute, as
counted by the engine that answers) of tasks enqueued, done and failed. Its subcommands add tasks, show, retry or drop dead
tasks, and pause or resume delivery.

Apps enqueue with their own token: POST $PIER_API/v1/apps/$PIER_APP/tasks/QUEUE
with Authorization: Bearer $PIER_TOKEN, or any beanstalkd client on $BEANSTALKD_ADDR.`,
		Example: `  pier tasks
  pier tasks add email '{"to":"ann@example.com"}'
  pier tasks dead email
  pier tasks retry email all`,
		Args: maxArgs(0),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, err := a.appName(app)
			if err != nil {
				return err
			}
			var qs []queueFigures
			if err := a.tasksCall(cmd.Context(), http.MethodGet, name, "", nil, "", &qs); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(qs)
			}
			if len(qs) == 0 {
				fmt.Fprintf(a.stdout, "%s has no task queues yet. Declare them under queues: in pier.yaml, or just enqueue.\n", name)
				return nil
			}
			tw := table(a.stdout)
			fmt.Fprintln(tw, "QUEUE\tREADY\tRESERVED\tDELAYED\tDEAD\tIN/S\tDONE/S\tFAILED/S\tDELIVERY\tSTATE")
			for _, q := range qs {
				delivery := "pull"
				if q.Config.Push != "" {
					delivery = "push " + q.Config.Push
					if q.Config.Rate > 0 {
						delivery += fmt.Sprintf(" %g/s", q.Config.Rate)
					}
				}
				state := "active"
				if q.Paused {
					state = "paused"
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%s\t%s\n", q.Name, q.Ready, q.Reserved, q.Delayed, q.Dead,
					q.InRate, q.DoneRate, q.FailRate, delivery, state)
			}
			return tw.Flush()
		}),
	}
	cmd.PersistentFlags().StringVar(&app, "app", "", "app name (default: the name in ./pier.yaml)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(a.tasksAddCmd(&app), a.tasksDeadCmd(&app), a.tasksRetryCmd(&app, "retry"),
		a.tasksRetryCmd(&app, "drop"), a.tasksPauseCmd(&app, "pause"), a.tasksPauseCmd(&app, "resume"))
	return cmd
}

func (a *cli) tasksAddCmd(app *string) *cobra.Command {
	var req struct {
		Body     string `json:"body"`
		Name     string `json:"name,omitempty"`
		Priority uint32 `json:"priority,omitempty"`
		Delay    string `json:"delay,omitempty"`
		ETA      string `json:"eta,omitempty"`
	}
	cmd := &cobra.Command{
		Use:   "add QUEUE [BODY|-]",
		Short: "Enqueue a task (the body from the argument, or stdin with -)",
		Example: `  pier tasks add email '{"to":"ann@example.com"}'
  pier tasks add reports --delay 10m --name nightly-2030-01-01 < body.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("%s needs a QUEUE and, optionally, a BODY (- or none reads stdin)", cmd.CommandPath())
			}
			return nil
		},
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, err := a.appName(*app)
			if err != nil {
				return err
			}
			if len(args) == 2 && args[1] != "-" {
				req.Body = args[1]
			} else {
				b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
				if err != nil {
					return err
				}
				req.Body = string(b)
			}
			body, _ := json.Marshal(req)
			var out struct {
				ID uint64 `json:"id"`
			}
			if err := a.tasksCall(cmd.Context(), http.MethodPost, name, "/"+args[0], body, "application/json", &out); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Enqueued task %d on %s/%s\n", out.ID, name, args[0])
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "task name: a second task with the same name within the dedup window is refused")
	f.Uint32Var(&req.Priority, "priority", 0, "priority (lower is more urgent; beanstalkd's meaning)")
	f.StringVar(&req.Delay, "delay", "", "deliver after this long, e.g. 10m")
	f.StringVar(&req.ETA, "eta", "", "deliver at this RFC 3339 time")
	return cmd
}

func (a *cli) tasksDeadCmd(app *string) *cobra.Command {
	var (
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:     "dead QUEUE",
		Short:   "List a queue's dead tasks (out of attempts, or buried)",
		Example: "  pier tasks dead email\n  pier tasks dead email --json",
		Args:    exactArgs(1, "a QUEUE"),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, err := a.appName(*app)
			if err != nil {
				return err
			}
			var ts []deadTask
			path := fmt.Sprintf("/%s/dead?limit=%d", args[0], limit)
			if err := a.tasksCall(cmd.Context(), http.MethodGet, name, path, nil, "", &ts); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(ts)
			}
			if len(ts) == 0 {
				fmt.Fprintf(a.stdout, "No dead tasks in %s.\n", args[0])
				return nil
			}
			tw := table(a.stdout)
			fmt.Fprintln(tw, "ID\tCREATED\tNAME\tERROR\tBODY")
			for _, t := range ts {
				body := string(t.Body)
				if len(body) > 40 {
					body = body[:40] + "..."
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%q\n", t.ID, formatTime(t.Created), orDash(t.Name), orDash(t.Error), body)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "list at most this many")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// tasksRetryCmd is "retry" (back to ready) or "drop" (delete) of dead tasks.
func (a *cli) tasksRetryCmd(app *string, verb string) *cobra.Command {
	method, short := http.MethodPost, "Put dead tasks back on their queue"
	if verb == "drop" {
		method, short = http.MethodDelete, "Delete dead tasks"
	}
	return &cobra.Command{
		Use:     verb + " QUEUE ID|all",
		Short:   short,
		Example: fmt.Sprintf("  pier tasks %s email 123456789\n  pier tasks %s email all", verb, verb),
		Args:    exactArgs(2, "a QUEUE and a task ID (or all)"),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, err := a.appName(*app)
			if err != nil {
				return err
			}
			path := "/" + args[0] + "/dead/" + url.PathEscape(args[1])
			if verb == "retry" {
				path += "/retry"
			}
			var out map[string]int
			if err := a.tasksCall(cmd.Context(), method, name, path, nil, "", &out); err != nil {
				return err
			}
			if verb == "retry" {
				fmt.Fprintf(a.stdout, "Retried %d task(s) of %s\n", out["retried"], args[0])
			} else {
				fmt.Fprintf(a.stdout, "Dropped %d task(s) of %s\n", out["dropped"], args[0])
			}
			return nil
		}),
	}
}

// tasksPauseCmd is "pause" or "resume" of a queue's delivery.
func (a *cli) tasksPauseCmd(app *string, verb string) *cobra.Command {
	var d time.Duration
	short := "Stop delivering a queue's tasks (enqueueing still works)"
	if verb == "resume" {
		short = "Deliver a paused queue's tasks again"
	}
	cmd := &cobra.Command{
		Use:   verb + " QUEUE",
		Short: short,
		Args:  exactArgs(1, "a QUEUE"),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, err := a.appName(*app)
			if err != nil {
				return err
			}
			var body []byte
			if d > 0 {
				body, _ = json.Marshal(map[string]string{"for": d.String()})
			}
			var out queueFigures
			if err := a.tasksCall(cmd.Context(), http.MethodPost, name, "/"+args[0]+"/"+verb, body, "application/json", &out); err != nil {
				return err
			}
			if out.Paused {
				fmt.Fprintf(a.stdout, "%s is paused (%s left)\n", args[0], out.PauseLeft)
			} else {
				fmt.Fprintf(a.stdout, "%s is delivering\n", args[0])
			}
			return nil
		}),
	}
	if verb == "pause" {
		cmd.Flags().DurationVar(&d, "for", 0, "pause for this long (default: until resumed)")
	}
	return cmd
}

// tasksCall sends one request to /v1/apps/{app}/tasks<path> and decodes
// the JSON answer into out.
func (a *cli) tasksCall(ctx context.Context, method, app, path string, body []byte, contentType string, out any) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	return c.Call(ctx, method, "/v1/apps/"+url.PathEscape(app)+"/tasks"+path, bytes.NewReader(body), contentType, out)
}
