package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"pier/internal/api"
)

// progress prints the events of a deploy, rollback, promotion or config
// change as printEvent does and, when stdout is a terminal, how long after
// the command started each step came and the whole took: the slow step of
// a slow deploy shows at a glance. Piped output stays as it was, for
// scripts and logs.
type progress struct {
	a     *cli
	start time.Time
	tty   bool // stdout is a terminal
	color bool // dim the times (not with NO_COLOR)
}

func (a *cli) progress() *progress {
	r, ok := a.stdout.(io.Reader) // an *os.File is both
	tty := ok && a.isTerminal(r)
	return &progress{a: a, start: time.Now(), tty: tty, color: tty && a.getenv("NO_COLOR") == ""}
}

// since words the time since the start, as a suffix for a step's line.
func (p *progress) since() string {
	d := time.Since(p.start)
	s := fmt.Sprintf("%.1fs", d.Seconds())
	if d >= time.Minute {
		s = d.Round(time.Second).String()
	}
	if p.color {
		return " \x1b[2m(" + s + ")\x1b[0m"
	}
	return " (" + s + ")"
}

// event is the emit function to hand the API client.
func (p *progress) event(ev api.Event) {
	switch {
	case !p.tty, ev.Type == api.EventLog, ev.Type == api.EventDone, ev.Type == api.EventError:
		p.a.printEvent(ev)
	default:
		msg := ev.Message
		if msg == "" {
			msg = defaultEventMessage(ev)
		}
		fmt.Fprintf(p.a.stdout, "-----> %s%s\n", msg, p.since())
	}
}

// done prints the closing line (see printDone), with the total time on a
// terminal.
func (p *progress) done(ctx context.Context, c *api.Client, app string, done *api.Event) {
	took := ""
	if p.tty {
		took = p.since()
	}
	p.a.printDone(ctx, c, app, done, took)
}
