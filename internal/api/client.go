package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Client talks to the engine API described in docs/internals.md. The zero
// value is not usable: BaseURL must be set. A Client is safe for concurrent use.
type Client struct {
	// BaseURL is the engine API's root, e.g. "http://127.0.0.1:7070", with
	// no trailing slash needed; a path prefix (behind a proxy) is kept.
	BaseURL string
	// Token is sent as "Authorization: Bearer <Token>". If empty, no
	// Authorization header is sent and every route but /v1/health answers 401.
	Token string
	// HTTP sends the requests. If nil, http.DefaultClient is used. It should
	// have no overall Timeout: deploy and log streams run for minutes; the
	// context passed to each method bounds a call instead.
	HTTP *http.Client
}

// APIError is a non-2xx answer of the engine: its status and the message of
// its {"error": ...} body.
type APIError struct {
	Status  int
	Message string
}

// Error returns the engine's message. A 401 also says where the token comes
// from, since that is the usual cause.
func (e *APIError) Error() string {
	msg := e.Message
	if e.Status == http.StatusUnauthorized {
		if msg == "" {
			msg = "the engine refused the API token (missing or wrong)"
		}
		return msg + `; pier takes the token from --token, else $PIER_TOKEN, else the file $PIER_HOME/token (~/.pier/token by default) that "pier up" writes`
	}
	if msg == "" {
		msg = fmt.Sprintf("the engine answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return msg
}

// UnreachableError means no connection to the engine could be made.
type UnreachableError struct {
	URL string // the Client's BaseURL
	Err error  // the dial error
}

func (e *UnreachableError) Error() string {
	if errors.Is(e.Err, syscall.ECONNREFUSED) {
		return fmt.Sprintf("cannot reach the engine at %s (is \"pier up\" running?)", e.URL)
	}
	return fmt.Sprintf("cannot reach the engine at %s (is \"pier up\" running?): %v", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// DeployError is a deploy, rollback or config change that ended with an
// "error" event. The old release keeps serving.
type DeployError struct {
	Event Event // the "error" event, with Error and LogTail
}

// Error returns the event's error followed by the log tail, one line each.
func (e *DeployError) Error() string {
	var b strings.Builder
	if e.Event.Error != "" {
		b.WriteString(e.Event.Error)
	} else if e.Event.Message != "" {
		b.WriteString(e.Event.Message)
	} else {
		b.WriteString("the engine reported an error without a message")
	}
	if len(e.Event.LogTail) > 0 {
		b.WriteString("\n  last log lines:")
		for _, l := range e.Event.LogTail {
			b.WriteString("\n    ")
			b.WriteString(l)
		}
	}
	return b.String()
}

// ErrStreamEnded is returned when an event stream closes before its "done"
// or "error" event: the engine went away mid-way. The change may still
// complete; `pier releases` tells.
var ErrStreamEnded = errors.New("the engine closed the stream before reporting the outcome (check with \"pier releases\")")

// LogOptions selects the lines Logs returns.
type LogOptions struct {
	Follow  bool          // keep streaming new lines until ctx is done
	Process string        // only this process type ("web"); empty means all
	Lines   int           // this many recent lines first; 0 leaves the engine's default
	Since   time.Duration // only lines from this long ago on; 0 = any
	Grep    string        // only lines matching this regular expression (filtered by the engine)
}

// Health returns the engine's liveness answer; it needs no token.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	if err := c.getJSON(ctx, "/v1/health", nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Apps lists every app.
func (c *Client) Apps(ctx context.Context) ([]App, error) {
	var apps []App
	if err := c.getJSON(ctx, "/v1/apps", nil, &apps); err != nil {
		return nil, err
	}
	return apps, nil
}

// App returns one app with its instances.
func (c *Client) App(ctx context.Context, name string) (*App, error) {
	var a App
	if err := c.getJSON(ctx, appPath(name, ""), nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Releases lists an app's releases, newest first.
func (c *Client) Releases(ctx context.Context, app string) ([]Release, error) {
	var rs []Release
	if err := c.getJSON(ctx, appPath(app, "/releases"), nil, &rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// Env returns an app's config vars.
func (c *Client) Env(ctx context.Context, app string) (map[string]string, error) {
	env := map[string]string{}
	if err := c.getJSON(ctx, appPath(app, "/env"), nil, &env); err != nil {
		return nil, err
	}
	return env, nil
}

// PS lists an app's instances.
func (c *Client) PS(ctx context.Context, app string) ([]Instance, error) {
	var is []Instance
	if err := c.getJSON(ctx, appPath(app, "/ps"), nil, &is); err != nil {
		return nil, err
	}
	return is, nil
}

// Scale sets the number of instances per process type and returns the app.
func (c *Client) Scale(ctx context.Context, app string, scale map[string]int) (*App, error) {
	resp, err := c.sendJSON(ctx, http.MethodPut, appPath(app, "/scale"), scale)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var a App
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, fmt.Errorf("reading the scale answer: %w", err)
	}
	return &a, nil
}

// Destroy deletes an app, its releases and its instances.
func (c *Client) Destroy(ctx context.Context, app string) error {
	resp, err := c.do(ctx, http.MethodDelete, appPath(app, ""), nil, nil, "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Deploy uploads a tar.gz bundle and follows the deploy. onEvent, if not
// nil, sees every event as it arrives, the final one included. It returns
// the "done" event, or a *DeployError for an "error" event.
func (c *Client) Deploy(ctx context.Context, app string, bundle io.Reader, onEvent func(Event)) (*Event, error) {
	resp, err := c.do(ctx, http.MethodPost, appPath(app, "/deploy"), nil, bundle, "application/gzip")
	if err != nil {
		return nil, err
	}
	return readEvents(ctx, resp, onEvent)
}

// DeployCanary uploads a bundle like Deploy, as a canary release that gets
// percent of the app's new clients beside the current release.
func (c *Client) DeployCanary(ctx context.Context, app string, bundle io.Reader, percent float64, onEvent func(Event)) (*Event, error) {
	q := url.Values{"canary": {strconv.FormatFloat(percent, 'f', -1, 64)}}
	resp, err := c.do(ctx, http.MethodPost, appPath(app, "/deploy"), q, bundle, "application/gzip")
	if err != nil {
		return nil, err
	}
	return readEvents(ctx, resp, onEvent)
}

// Promote makes the app's canary its current release and follows it like
// Deploy.
func (c *Client) Promote(ctx context.Context, app string, onEvent func(Event)) (*Event, error) {
	resp, err := c.do(ctx, http.MethodPost, appPath(app, "/promote"), nil, nil, "")
	if err != nil {
		return nil, err
	}
	return readEvents(ctx, resp, onEvent)
}

// Rollback makes a new release from an older one (0 = the one before the
// current) and follows it like Deploy.
func (c *Client) Rollback(ctx context.Context, app string, release int, onEvent func(Event)) (*Event, error) {
	resp, err := c.sendJSON(ctx, http.MethodPost, appPath(app, "/rollback"), RollbackRequest{Release: release})
	if err != nil {
		return nil, err
	}
	return readEvents(ctx, resp, onEvent)
}

// SetEnv changes config vars, which makes a new release, and follows it like
// Deploy.
func (c *Client) SetEnv(ctx context.Context, app string, change EnvChange, onEvent func(Event)) (*Event, error) {
	resp, err := c.sendJSON(ctx, http.MethodPatch, appPath(app, "/env"), change)
	if err != nil {
		return nil, err
	}
	return readEvents(ctx, resp, onEvent)
}

// Logs streams an app's log lines to onLine. Without opts.Follow it returns
// nil once the engine has sent the recent lines; with it, it runs until ctx
// is done and then returns ctx.Err().
func (c *Client) Logs(ctx context.Context, app string, opts LogOptions, onLine func(LogLine)) error {
	q := url.Values{}
	if opts.Follow {
		q.Set("follow", "1")
	}
	if opts.Process != "" {
		q.Set("process", opts.Process)
	}
	if opts.Lines > 0 {
		q.Set("lines", strconv.Itoa(opts.Lines))
	}
	if opts.Since > 0 {
		q.Set("since", opts.Since.String())
	}
	if opts.Grep != "" {
		q.Set("grep", opts.Grep)
	}
	resp, err := c.do(ctx, http.MethodGet, appPath(app, "/logs"), q, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var l LogLine
		if err := dec.Decode(&l); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("reading the log stream: %w", err)
		}
		if onLine != nil {
			onLine(l)
		}
	}
}

// Run starts a one-off process with the app's environment, copies its output
// to stdout and stderr, and returns its exit code. Each output line's text is
// written with a newline after it unless it already ends in one. err is set
// only when the command could not be run or followed to its end.
func (c *Client) Run(ctx context.Context, app string, command []string, stdout, stderr io.Writer) (exitCode int, err error) {
	resp, err := c.sendJSON(ctx, http.MethodPost, appPath(app, "/run"), RunRequest{Command: command})
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var o RunOutput
		if err := dec.Decode(&o); err != nil {
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
			if err == io.EOF {
				return -1, ErrStreamEnded
			}
			return -1, fmt.Errorf("reading the run output: %w", err)
		}
		if o.Text != "" {
			w := stdout
			if o.Stream != "stdout" {
				w = stderr
			}
			if w != nil {
				text := o.Text
				if !strings.HasSuffix(text, "\n") {
					text += "\n"
				}
				if _, err := io.WriteString(w, text); err != nil {
					return -1, err
				}
			}
		}
		if o.Error != "" {
			return -1, errors.New(o.Error)
		}
		if o.Exit != nil {
			return *o.Exit, nil
		}
	}
}

// readEvents follows an NDJSON event stream to its "done" or "error" event.
func readEvents(ctx context.Context, resp *http.Response, onEvent func(Event)) (*Event, error) {
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev Event
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err == io.EOF {
				return nil, ErrStreamEnded
			}
			return nil, fmt.Errorf("reading the event stream: %w", err)
		}
		if onEvent != nil {
			onEvent(ev)
		}
		switch ev.Type {
		case EventDone:
			return &ev, nil
		case EventError:
			return nil, &DeployError{Event: ev}
		}
	}
}

// appPath returns /v1/apps/{app}{rest} with app escaped.
func appPath(app, rest string) string {
	return "/v1/apps/" + url.PathEscape(app) + rest
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, q, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("reading the answer to GET %s: %w", path, err)
	}
	return nil
}

func (c *Client) sendJSON(ctx context.Context, method, path string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, method, path, nil, bytes.NewReader(b), "application/json")
}

// Call sends one request to path (which may carry a query) and decodes the
// JSON answer into out (nil: the answer is discarded). Commands for the
// services' routes (tasks, errors, metrics) use it instead of a method each.
func (c *Client) Call(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	resp, err := c.do(ctx, method, path, nil, body, contentType)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// do sends one request and returns the response when its status is 2xx;
// otherwise it returns an *APIError (or *UnreachableError) and closes the body.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType string) (*http.Response, error) {
	base := strings.TrimRight(c.BaseURL, "/")
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json, application/x-ndjson")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, &UnreachableError{URL: base, Err: err}
		}
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

// decodeError turns a failed answer into an *APIError, using the body's
// "error" field, or its text when it is not the JSON the engine sends.
func decodeError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode}
	var body Error
	if json.Unmarshal(raw, &body) == nil && body.Error != "" {
		e.Message = body.Error
	} else {
		e.Message = strings.TrimSpace(string(raw))
	}
	return e
}
