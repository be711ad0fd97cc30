package cli

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
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

	sent atomic.Int64 // bundle bytes read by the client so far

	mu        sync.Mutex    // guards uploading, stdout while uploading
	uploading bool          // the upload line is on screen, being rewritten
	stopped   chan struct{} // closed when the upload line is done with
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

// upload returns r counting what is read from it and, on a terminal,
// shows the count on one line rewritten a few times a second until the
// engine's first event (it comes once the bundle is in).
func (p *progress) upload(r io.Reader) io.Reader {
	if !p.tty {
		return r
	}
	p.uploading, p.stopped = true, make(chan struct{})
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stopped:
				return
			case <-tick.C:
				p.mu.Lock()
				if p.uploading {
					fmt.Fprintf(p.a.stdout, "\r\x1b[K-----> Uploading %s", byteSize(p.sent.Load()))
				}
				p.mu.Unlock()
			}
		}
	}()
	return &countingReader{r: r, n: &p.sent}
}

// endUpload replaces the upload line with what was sent (uploaded) or
// clears it.
func (p *progress) endUpload(uploaded bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.uploading {
		return
	}
	p.uploading = false
	close(p.stopped)
	fmt.Fprint(p.a.stdout, "\r\x1b[K")
	if uploaded {
		fmt.Fprintf(p.a.stdout, "-----> Uploaded %s%s\n", byteSize(p.sent.Load()), p.since())
	}
}

// stop ends the upload line if nothing did (a deploy refused before any
// event); safe to call more than once.
func (p *progress) stop() { p.endUpload(false) }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// byteSize words a byte count: 512 B, 3.4 KB, 12.1 MB.
func byteSize(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f KB", float64(n)/1000)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

// event is the emit function to hand the API client.
func (p *progress) event(ev api.Event) {
	p.endUpload(true)
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
