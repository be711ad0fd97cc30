package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func (a *cli) upCmd() *cobra.Command {
	var (
		o        UpOptions
		logLevel string
		maxBody  string

		logRetention string

		errorsRetention string

		cacheSize, cacheDiskSize, cacheDiskMin string

		tasksMemory string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the engine: store, supervisor, gateway and API",
		Long: `Up runs the pier engine in the foreground until interrupted (SIGINT or
SIGTERM), then stops it cleanly. It brings every app back to its desired
state, serves their HTTP traffic on --http and the engine API on --api.

State lives in --home (default $PIER_HOME, else ~/.pier); the API token is
written to <home>/token for the other pier commands to find.`,
		Example: `  pier up
  pier up --http :80 --domain apps.example.com
  pier up --http :80 --https :443 --tls-dir /etc/pier/certs --acme-email ops@example.com
  pier up --home /var/lib/pier --log-level debug`,
		Args: maxArgs(0),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			if a.hooks.Up == nil {
				return errors.New("pier up is not available in this build")
			}
			logger, err := newLogger(logLevel, a.stderr)
			if err != nil {
				return err
			}
			if o.MaxBodyBytes, err = parseSize(maxBody); err != nil {
				return fmt.Errorf("--max-body: %w", err)
			}
			if o.LogRetention, err = parseSize(logRetention); err != nil || o.LogRetention < 0 {
				return usagef("--log-retention %q: want a size such as 64M or 1G", logRetention)
			}
			if o.TasksMemory, err = parseSize(tasksMemory); err != nil {
				return usagef("--tasks-memory %q: want a size such as 256M or 1G (0 = no bound)", tasksMemory)
			}
			if o.ErrorsRetention, err = parseDays(errorsRetention); err != nil || o.ErrorsRetention <= 0 {
				return usagef("--errors-retention %q: want a duration such as 30d, 7d or 12h", errorsRetention)
			}
			for _, f := range []struct {
				name, value string
				to          *int64
			}{
				{"--cache-size", cacheSize, &o.CacheBytes},
				{"--cache-disk-size", cacheDiskSize, &o.CacheDiskBytes},
				{"--cache-disk-min", cacheDiskMin, &o.CacheDiskMin},
			} {
				if *f.to, err = parseSize(f.value); err != nil || *f.to <= 0 {
					return usagef("%s %q: want a size above 0 such as 64K, 256M or 1G", f.name, f.value)
				}
			}
			if o.CacheDisk == "" && !cmd.Flags().Changed("cache-disk-size") {
				o.CacheDiskBytes = 0 // no disk tier
			}
			switch {
			case o.SearchIdleClose < 0:
				return usagef("--search-idle-close %v: want 0 (never) or a duration such as 5m", o.SearchIdleClose)
			case o.SearchIdleClose == 0:
				o.SearchIdleClose = -1 // the search service's "never"
			}
			switch {
			case o.ErrorsNodeRate < 0:
				return usagef("--errors-node-rate %v: want 0 (no cap) or more events per second", o.ErrorsNodeRate)
			case o.ErrorsNodeRate == 0:
				o.ErrorsNodeRate = -1 // the engine's "no cap"
			}
			o.Home, o.Logger = a.homeDir(), logger
			return a.hooks.Up(cmd.Context(), o)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.HTTP, "http", ":8080", "address the gateway serves apps on")
	// Shadows the global --api: here it is where to listen, not where to connect.
	f.StringVar(&o.API, "api", "127.0.0.1:7070", "address the engine API listens on")
	f.StringVar(&o.Domain, "domain", "localhost", "apps are served at <app>.<domain>")
	f.StringVar(&o.Beanstalkd, "beanstalkd", "127.0.0.1:11300", "address the beanstalkd-protocol task server listens on")
	f.StringVar(&tasksMemory, "tasks-memory", "256M", "task bodies the task queues keep in memory; past it, bodies are read back from the store when a task is reserved (0 = no bound)")
	f.DurationVar(&o.SearchIdleClose, "search-idle-close", 5*time.Minute, "a search index unused this long is closed (its files and memory released) and reopened on its next use (0 = never)")
	f.StringVar(&o.Statsd, "statsd", "127.0.0.1:8125", "UDP address the statsd listener binds (STATSD_ADDR in every app)")
	f.StringVar(&logRetention, "log-retention", "64M", "log lines kept per app, by size (e.g. 64M, 1G); the oldest go first")
	f.StringVar(&errorsRetention, "errors-retention", "30d", "how long each app's error events are kept, unless the app's own (pier errors config --retention-days) says otherwise (e.g. 30d, 90d)")
	f.Float64Var(&o.ErrorsNodeRate, "errors-node-rate", 1000, "error events per second this node takes from all apps together, on top of each app's rate; past it SDKs get 429 (0 = no cap)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.BoolVar(&o.AccessLog, "access-log", false, "log every gateway request (app, status, bytes, duration, cache result)")
	f.StringVar(&maxBody, "max-body", "16M", "largest request body the gateway accepts (e.g. 1M, 512K; 0 = no limit)")
	f.DurationVar(&o.IdleTimeout, "idle-timeout", 5*time.Minute, "apps whose pier.yaml says scale: {web: {min: 0}} stop after this long without a request")
	f.DurationVar(&o.WakeTimeout, "wake-timeout", 30*time.Second, "how long a request waits for a stopped min-0 app to start before a 503")
	f.StringVar(&cacheSize, "cache-size", "64M", "memory the HTTP cache's stored responses may take (memory tier)")
	f.StringVar(&o.CacheDisk, "cache-disk", "", "directory for the HTTP cache's disk tier for large bodies (default <home>/httpcache when --cache-disk-size is given; none otherwise); emptied at start and stop")
	f.StringVar(&cacheDiskSize, "cache-disk-size", "1G", "disk the HTTP cache's disk tier may take; giving it turns the tier on")
	f.StringVar(&cacheDiskMin, "cache-disk-min", "64K", "bodies of this size or more are cached on disk instead of in memory, when the disk tier is on")
	f.StringVar(&o.HTTPS, "https", "", "address the gateway also serves apps on over TLS, HTTP/2 and HTTP/1.1 (e.g. :443)")
	f.StringVar(&o.TLSDir, "tls-dir", "", "directory of <host>.crt/<host>.key certificate pairs for --https (reloaded on change and SIGHUP)")
	f.StringVar(&o.ACMEEmail, "acme-email", "", "get certificates from ACME (Let's Encrypt) on demand for the hosts apps are served at, with this account e-mail")
	f.StringVar(&o.ACMECA, "acme-ca", "", "ACME directory URL (default Let's Encrypt production)")
	return cmd
}

// parseDays reads a duration that may also be given in days ("30d").
func parseDays(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(strings.TrimSpace(s), "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("bad number of days %q", d)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// parseSize reads a byte size: a number with an optional K, M or G suffix
// (powers of 1024; KB and KiB are read as K). "0" means no limit and is
// returned as -1.
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B")
	if n := len(t); n >= 2 && t[n-1] == 'I' && strings.IndexByte("KMG", t[n-2]) >= 0 {
		t = t[:n-1]
	}
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult, t = 1<<10, t[:n-1]
		case 'M':
			mult, t = 1<<20, t[:n-1]
		case 'G':
			mult, t = 1<<30, t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q (want e.g. 16M, 512K or bytes)", s)
	}
	if n == 0 {
		return -1, nil
	}
	return n * mult, nil
}

func (a *cli) serveCmd() *cobra.Command {
	var (
		o        ServeOptions
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "serve [DIR]",
		Short: "Run the app in DIR locally, without a running engine",
		Long: `Serve builds the app in DIR (default: the current directory) and runs it
with its manifest's processes behind pier's gateway, in the foreground, until
interrupted. It is for trying an app on your machine; nothing is stored.`,
		Example: `  pier serve
  pier serve ./blog --http :9000`,
		Args: maxArgs(1),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			if a.hooks.Serve == nil {
				return errors.New("pier serve is not available in this build")
			}
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			name, _, err := dirApp(abs, o.App)
			if err != nil {
				return err
			}
			logger, err := newLogger(logLevel, a.stderr)
			if err != nil {
				return err
			}
			o.Dir, o.App, o.Logger = abs, name, logger
			return a.hooks.Serve(cmd.Context(), o)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.App, "app", "", "app name (default: pier.yaml's name, else the directory's)")
	f.StringVar(&o.HTTP, "http", ":8080", "address to serve the app on")
	f.StringVar(&o.Domain, "domain", "localhost", "the app is served at <app>.<domain> (and on any host)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func (a *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print pier's version, and the engine's when it is reachable",
		Args:  maxArgs(0),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(a.stdout, "pier %s\n", version())
			c, err := a.client()
			if err != nil {
				return nil // a bad --api is no reason for version to fail
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
			defer cancel()
			if h, err := c.Health(ctx); err == nil {
				fmt.Fprintf(a.stdout, "engine %s at %s\n", h.Version, c.BaseURL)
			}
			return nil
		}),
	}
}
