// Package cli is pier's command line: a cobra command tree whose commands,
// but for "up" and "serve", are clients of the engine API (internal/api).
// "up" and "serve" run the engine in this process through Hooks, which
// cmd/pier fills in, so this package never imports the engine.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"pier/internal/api"
)

// Version is pier's version, set at link time with
// -ldflags "-X pier/internal/cli.Version=v1.2.3". If empty, the module
// version from the build info is used, else "dev".
var Version string

// DefaultAPI is where the engine API listens unless told otherwise.
const DefaultAPI = "http://127.0.0.1:7070"

// Hooks are the commands that run the engine in this process; cmd/pier
// passes engine functions in, so cli never imports engine. A nil hook makes
// its command fail with a clear message.
type Hooks struct {
	Up    func(ctx context.Context, o UpOptions) error
	Serve func(ctx context.Context, o ServeOptions) error
}

// UpOptions are the flags of "pier up", resolved.
type UpOptions struct {
	Home   string       // state directory: --home, else $PIER_HOME, else ~/.pier
	HTTP   string       // gateway listen address, e.g. ":8080"
	API    string       // engine API listen address, e.g. "127.0.0.1:7070"
	Domain string       // apps are served at <app>.<Domain>
	Logger *slog.Logger // from --log-level, writing to stderr

	Beanstalkd string // beanstalkd-protocol task server listen address, e.g. "127.0.0.1:11300"
	Statsd     string // statsd UDP listen address, e.g. "127.0.0.1:8125"

	TasksMemory int64 // --tasks-memory: task bodies held in memory; -1 = no bound

	SearchIdleClose time.Duration // --search-idle-close: an unused search index is closed after this long; negative = never

	LogRetention int64 // --log-retention: bytes of log lines kept per app; 0 = the engine's default

	ErrorsRetention time.Duration // --errors-retention: how long each app's error events are kept
	ErrorsNodeRate  float64       // --errors-node-rate: error events/s this node takes from all apps; negative = no cap

	CacheBytes     int64  // --cache-size: the HTTP cache's memory tier bound
	CacheDisk      string // --cache-disk: the HTTP cache's disk tier directory; empty = <home>/httpcache if CacheDiskBytes > 0
	CacheDiskBytes int64  // --cache-disk-size: the disk tier bound; 0 = no disk tier
	CacheDiskMin   int64  // --cache-disk-min: bodies this large or more go to the disk tier

	AccessLog    bool  // --access-log: one log line per gateway request
	MaxBodyBytes int64 // --max-body: request body bound; 0 = the gateway's default, -1 = none

	IdleTimeout time.Duration // --idle-timeout: apps with web min 0 stop after this long without a request
	WakeTimeout time.Duration // --wake-timeout: how long a request waits for such an app to start

	HTTPS     string // --https: TLS gateway listen address, e.g. ":8443"; empty = none
	TLSDir    string // --tls-dir: <host>.crt/<host>.key pairs
	ACMEEmail string // --acme-email: turns ACME on
	ACMECA    string // --acme-ca: ACME directory URL; empty = Let's Encrypt
}

// ServeOptions are the flags of "pier serve", resolved.
type ServeOptions struct {
	Dir    string // absolute path of the app to run
	App    string // its name: --app, else the manifest's, else the directory's
	HTTP   string // gateway listen address, e.g. ":8080"
	Domain string
	Logger *slog.Logger
}

// ExitError makes Execute exit with Code without printing anything; "pier
// run" returns it to pass on the remote command's exit code.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// usageError is a mistake in the command line; Execute adds a pointer to
// --help after it.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// errNoApp is returned by commands that need an app and got none.
var errNoApp = errors.New("no app given: use --app NAME or run inside the app's directory")

// cli holds the global flags and what the commands share. Commands run one
// at a time, so nothing here needs a lock.
type cli struct {
	hooks          Hooks
	stdout, stderr io.Writer

	// Seams for tests; New sets them to the real thing.
	getenv     func(string) string
	isTerminal func(io.Reader) bool
	wd         string // directory the app defaults are read from; "" is the current one

	// global flags
	api, token, home string

	tokenSource string // where the client's token came from, for 401 hints
}

// New returns the root "pier" command. Output goes to stdout and stderr;
// run it with Execute.
func New(h Hooks, stdout, stderr io.Writer) *cobra.Command {
	a := &cli{
		hooks:      h,
		stdout:     stdout,
		stderr:     stderr,
		getenv:     os.Getenv,
		isTerminal: isTerminal,
	}
	return a.root()
}

func (a *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "pier",
		Short: "pier runs web apps: build, deploy, route, scale, observe",
		Long: `pier is a self-hosted app engine in one binary. "pier up" starts the engine;
every other command talks to it over its HTTP API.

The API address comes from --api, else $PIER_API, else ` + DefaultAPI + `.
The API token comes from --token, else $PIER_TOKEN, else the file
$PIER_HOME/token ($PIER_HOME defaults to ~/.pier), which "pier up" writes.`,
		Example: `  pier up                          # start the engine
  pier new blog --lang python      # write a starter app
  cd blog && pier deploy           # build and run it
  pier logs -f                     # follow its logs`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.CompletionOptions.HiddenDefaultCmd = true

	pf := root.PersistentFlags()
	pf.StringVar(&a.api, "api", "", "engine API URL (default $PIER_API, else "+DefaultAPI+")")
	pf.StringVar(&a.token, "token", "", "engine API token (default $PIER_TOKEN, else $PIER_HOME/token)")
	pf.StringVar(&a.home, "home", "", "pier's state directory (default $PIER_HOME, else ~/.pier)")

	root.AddCommand(
		a.upCmd(), a.serveCmd(), a.newCmd(),
		a.deployCmd(), a.rollbackCmd(), a.promoteCmd(), a.envCmd(),
		a.appsCmd(), a.releasesCmd(), a.psCmd(), a.scaleCmd(), a.logsCmd(),
		a.runCmd(), a.destroyCmd(), a.versionCmd(),
	)
	root.AddCommand(a.errorsCmd())
	root.AddCommand(a.searchCmd())
	root.AddCommand(a.cacheCmd())
	root.AddCommand(a.tasksCmd())
	root.AddCommand(a.metricsCmd(), a.topCmd())
	root.AddCommand(a.drainsCmd())
	root.AddCommand(a.domainsCmd())
	return root
}

// Execute runs the command tree with a context cancelled on SIGINT or
// SIGTERM (a second signal kills the process), prints any error as
// "pier: <message>" on the command's stderr, and returns the exit code.
func Execute(ctx context.Context, root *cobra.Command) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // the next signal gets the default behaviour
	}()
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return 130 // interrupted: the user knows
	}
	w := root.ErrOrStderr()
	fmt.Fprintf(w, "pier: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return 1
}

// wrap adapts a command body to cobra, adding hints to errors whose cause
// is the token.
func (a *cli) wrap(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		return a.explain(fn(cmd, args))
	}
}

// explain replaces the client's generic 401 message by one naming where
// this invocation's token came from.
func (a *cli) explain(err error) error {
	var ae *api.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		return err
	}
	tokenFile := filepath.Join(a.homeDir(), "token")
	msg := ae.Message
	if msg == "" {
		msg = "401 Unauthorized"
	}
	if a.tokenSource == "" {
		return fmt.Errorf("the engine wants an API token and none was found: give it with --token or $PIER_TOKEN, or check that %s exists (\"pier up\" writes it)\n(the engine said: %s)", tokenFile, msg)
	}
	return fmt.Errorf("the engine refused the API token from %s: give the right one with --token or $PIER_TOKEN; \"pier up\" writes it to %s\n(the engine said: %s)", a.tokenSource, tokenFile, msg)
}

// client returns an API client for the global flags.
func (a *cli) client() (*api.Client, error) {
	raw := a.api
	if raw == "" {
		raw = a.getenv("PIER_API")
	}
	if raw == "" {
		raw = DefaultAPI
	}
	base, err := normalizeAPI(raw)
	if err != nil {
		return nil, err
	}
	token, source, err := a.resolveToken()
	if err != nil {
		return nil, err
	}
	a.tokenSource = source
	return &api.Client{BaseURL: base, Token: token, HTTP: &http.Client{}}, nil
}

// normalizeAPI turns what a person types for --api into a base URL:
// "127.0.0.1:7070" and ":7070" get http:// (and 127.0.0.1), a trailing
// slash goes.
func normalizeAPI(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", usagef("--api: empty address")
	}
	if !strings.Contains(s, "://") {
		if strings.HasPrefix(s, ":") {
			s = "127.0.0.1" + s
		}
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", usagef("--api %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", usagef("--api %q: the scheme must be http or https", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", usagef("--api %q: no host", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", usagef("--api %q: a base URL takes no user, query or fragment", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// homeDir is --home, else $PIER_HOME, else ~/.pier.
func (a *cli) homeDir() string {
	if a.home != "" {
		return a.home
	}
	if h := a.getenv("PIER_HOME"); h != "" {
		return h
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".pier")
	}
	return ".pier"
}

// resolveToken returns the API token and where it came from: --token, else
// $PIER_TOKEN, else $PIER_HOME/token. No token at all is not an error here:
// the health route needs none, and the engine's 401 is explained by explain.
func (a *cli) resolveToken() (token, source string, err error) {
	if a.token != "" {
		return a.token, "--token", nil
	}
	if t := strings.TrimSpace(a.getenv("PIER_TOKEN")); t != "" {
		return t, "$PIER_TOKEN", nil
	}
	path := filepath.Join(a.homeDir(), "token")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("reading the API token: %w", err)
	}
	if t := strings.TrimSpace(string(b)); t != "" {
		return t, path, nil
	}
	return "", "", nil
}

// newLogger returns a text logger on w at the named level.
func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// version returns Version, else the module version, else "dev".
func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// maxArgs and exactArgs are cobra's, returning usage errors.
func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef("%s takes at most %d argument(s), got %d: %q", cmd.CommandPath(), n, len(args), args)
		}
		return nil
	}
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s needs %s", cmd.CommandPath(), what)
		}
		return nil
	}
}

func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("%s needs %s", cmd.CommandPath(), what)
		}
		return nil
	}
}
