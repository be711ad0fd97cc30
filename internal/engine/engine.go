// Package engine is pier's composition root: it opens the store and starts
// the supervisor, the deploy manager, the router, the gateway and the API,
// and wires them to each other. Only cmd/pier imports it; no other package
// knows all the parts.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"pier/internal/api"
	"pier/internal/build"
	"pier/internal/deploy"
	"pier/internal/gateway"
	"pier/internal/manifest"
	"pier/internal/store"
	"pier/internal/supervisor"
)

// Version is pier's version, set at build time with -ldflags.
var Version = "0.1.0-dev"

// Config is what `pier up` was given.
type Config struct {
	Home   string // state directory; default ~/.pier
	HTTP   string // gateway address; default :8080
	API    string // API address; default 127.0.0.1:7070
	Domain string // apps are served at <app>.<Domain>; default localhost
	Logger *slog.Logger
	// Ready, when set, is called once the engine answers on both addresses.
	Ready func(httpAddr, apiAddr string)
	// Quiet leaves the engine's own start and stop messages at debug level.
	Quiet bool

	// Beanstalkd is where the beanstalkd-protocol task server listens
	// (pier up's default: 127.0.0.1:11300); empty picks a free loopback port.
	Beanstalkd string
	// TasksMemory bounds the task bodies the task index holds in memory
	// (tasks.Options.Memory); 0 = tasks.DefaultMemory, negative = no bound.
	TasksMemory int64
	// SearchIdleClose is how long a search index stays open unused
	// (search.Options.IdleClose); 0 = 5 minutes, negative = never.
	SearchIdleClose time.Duration

	// Statsd is where the statsd UDP listener binds (pier up's default:
	// 127.0.0.1:8125); empty picks a free loopback port.
	Statsd string

	// LogRetention bounds each app's stored log lines, in bytes; 0 =
	// logs.DefaultMaxBytes (64 MiB).
	LogRetention int64

	// ErrorsRetention is how long each app's error events are kept
	// unless the app's error config says otherwise; 0 = 30 days.
	ErrorsRetention time.Duration
	// ErrorsNodeRate caps the error events per second this node takes
	// from all apps together, on top of each app's rate; 0 = 1000,
	// negative = no cap.
	ErrorsNodeRate float64

	// CacheBytes bounds the memory the HTTP cache's stored responses
	// take; 0 = 64 MiB.
	CacheBytes int64
	// CacheDisk is the directory of the HTTP cache's disk tier for large
	// bodies; empty = <Home>/httpcache when CacheDiskBytes is set. Files
	// the cache names there are removed at start and stop.
	CacheDisk string
	// CacheDiskBytes bounds the disk tier; 0 = no disk tier unless
	// CacheDisk is set, then 1 GiB.
	CacheDiskBytes int64
	// CacheDiskMin is the body size from which responses are stored on
	// disk rather than in memory; 0 = 64 KiB.
	CacheDiskMin int64

	// AccessLog logs one line per gateway request (part=access).
	AccessLog bool
	// MaxBodyBytes bounds request bodies through the gateway; 0 =
	// gateway.DefaultMaxBodyBytes, negative = no bound.
	MaxBodyBytes int64

	// IdleTimeout is how long an app whose manifest says web min 0 may go
	// without a request before its web instances stop; 0 = 5m.
	IdleTimeout time.Duration
	// WakeTimeout bounds the wait of a request for such an app to start;
	// 0 = gateway.DefaultWakeTimeout.
	WakeTimeout time.Duration

	// HTTPS, when set, is where the gateway also serves apps over TLS
	// (HTTP/2 and HTTP/1.1), with certificates from TLSDir and/or ACME.
	HTTPS string
	// TLSDir holds <host>.crt/<host>.key pairs, chosen by SNI and reloaded
	// when they change or on SIGHUP.
	TLSDir string
	// ACMEEmail turns on ACME (certmagic): certificates on demand for the
	// hosts apps are served at, from ACMECA (default Let's Encrypt).
	ACMEEmail, ACMECA string
}

func (c *Config) defaults() error {
	if c.Home == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("find home directory: %w (use --home)", err)
		}
		c.Home = filepath.Join(home, ".pier")
	}
	abs, err := filepath.Abs(c.Home)
	if err != nil {
		return err
	}
	c.Home = abs
	if c.HTTP == "" {
		c.HTTP = ":8080"
	}
	if c.API == "" {
		c.API = "127.0.0.1:7070"
	}
	if c.Domain == "" {
		c.Domain = "localhost"
	}
	c.Domain = strings.ToLower(strings.Trim(c.Domain, "."))
	if c.CacheDisk == "" && c.CacheDiskBytes > 0 {
		c.CacheDisk = filepath.Join(c.Home, "httpcache")
	}
	if c.CacheDisk != "" {
		if c.CacheDisk, err = filepath.Abs(c.CacheDisk); err != nil {
			return fmt.Errorf("--cache-disk: %w", err)
		}
	}
	if err := c.checkTLS(); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return nil
}

// Up runs the engine until ctx ends, then stops every app instance it
// started and closes the store.
func Up(ctx context.Context, cfg Config) error {
	return run(ctx, cfg, nil)
}

// run runs the engine; with, when set, runs beside it with the deploy
// manager, and the engine stops when it returns.
func run(ctx context.Context, cfg Config, with func(ctx context.Context, m *deploy.Manager, gatewayAddr string) error) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	log := cfg.Logger
	if err := os.MkdirAll(cfg.Home, 0o711); err != nil {
		return fmt.Errorf("pier up: %w", err)
	}
	token, err := adminToken(cfg.Home)
	if err != nil {
		return fmt.Errorf("pier up: %w", err)
	}
	runDir := filepath.Join(cfg.Home, "run")
	if n, err := supervisor.Sweep(log, runDir); err != nil {
		log.Warn("sweep leftover processes", "err", err)
	} else if n > 0 {
		log.Info("stopped processes left by a previous engine", "count", n)
	}

	// Listen first: a busy port is the most common start-up error and
	// should not cost a store start.
	httpLn, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("pier up: gateway: %w", err)
	}
	defer httpLn.Close()
	apiLn, err := net.Listen("tcp", cfg.API)
	if err != nil {
		return fmt.Errorf("pier up: api: %w", err)
	}
	defer apiLn.Close()
	var httpsLn net.Listener
	if cfg.HTTPS != "" {
		if httpsLn, err = net.Listen("tcp", cfg.HTTPS); err != nil {
			return fmt.Errorf("pier up: https gateway: %w", err)
		}
		defer httpsLn.Close()
	}

	st, err := store.Open(ctx, store.Options{Dir: filepath.Join(cfg.Home, "nats"), Logger: log.With("part", "store")})
	if err != nil {
		return fmt.Errorf("pier up: %w", err)
	}
	defer st.Close()
	parts, err := openParts(ctx, st)
	if err != nil {
		return fmt.Errorf("pier up: %w", err)
	}
	if parts.logs, err = openLogs(ctx, st, cfg.LogRetention, log.With("part", "logs")); err != nil {
		return fmt.Errorf("pier up: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	apiURL := "http://" + reachable(apiLn.Addr())
	httpPort := portOf(httpLn.Addr())
	h := &hub{
		log:        log,
		store:      st,
		home:       cfg.Home,
		domain:     cfg.Domain,
		gatewayURL: "http://" + reachable(httpLn.Addr()),
		apiURL:     apiURL,
		beanstalkd: cfg.Beanstalkd,
		tasksMem:   cfg.TasksMemory,
		searchIdle: cfg.SearchIdleClose,
		errors:     errorsConfig{retention: cfg.ErrorsRetention, nodeRate: cfg.ErrorsNodeRate},
		internal:   http.NewServeMux(),
	}
	defer h.stop()

	cache, err := newGatewayCache(log.With("part", "cache"), cfg)
	if err != nil {
		return fmt.Errorf("pier up: %w", err)
	}
	h.stops = append(h.stops, cache.c.Close)
	met := newEngineMetrics(log.With("part", "metrics"), cfg.Statsd)
	var mgr *deploy.Manager
	gwOpts := gateway.Options{Logger: log.With("part", "gateway"), Internal: h.internal, Cache: cache, Observe: met.m.Observe, MaxBodyBytes: cfg.MaxBodyBytes}
	if cfg.AccessLog {
		gwOpts.AccessLog = log.With("part", "access")
	}
	gwOpts.Waker, gwOpts.WakeTimeout = waker{&mgr}, cfg.WakeTimeout
	gw := gateway.New(gwOpts)
	h.releases = append(h.releases, func(app string, _ int, m *manifest.Manifest) {
		if m != nil {
			gw.SetRateLimit(app, gateway.RateLimit{Requests: m.Limits.Requests, PerIP: m.Limits.PerIP})
		}
	})
	h.destroys = append(h.destroys, func(app string) { gw.SetRateLimit(app, gateway.RateLimit{}) })
	logs := &logSink{l: parts.logs}
	sup := supervisor.New(supervisor.Options{
		Logger: log.With("part", "supervisor"),
		RunDir: runDir,
		Output: func(l supervisor.Line) {
			logs.write(l)
			h.onOutput(l)
		},
		OnChange: func(s supervisor.Status) { mgr.Observe(s) },
	})
	met.sup = sup
	router := deploy.NewRouter(parts.apps, parts.instances, func(routes []deploy.Route) {
		gw.SetRoutes(gatewayRoutes(routes))
	}, log.With("part", "router")).WithDomains(parts.domains)
	domains := deploy.NewDomainStore(parts.domains, parts.apps)
	h.destroys = append(h.destroys, func(app string) {
		if err := domains.RemoveApp(ctx, app); err != nil {
			log.Warn("detaching the domains of a destroyed app", "app", app, "err", err)
		}
	})

	mgr = deploy.New(ctx, deploy.Config{
		Home:       appsHome(cfg.Home, log),
		Domain:     cfg.Domain,
		HTTPPort:   httpPort,
		Apps:       parts.apps,
		Releases:   parts.releases,
		Instances:  parts.instances,
		Bundles:    parts.bundles,
		Events:     parts.events,
		Domains:    parts.domains,
		Builder:    &build.Builder{Logger: log.With("part", "build")},
		Supervisor: sup,
		Gateway:    gw,
		Routes:     router,
		EnsureUser: ensureUser,
		ServiceEnv: h.serviceEnv,
		OnRelease:  h.onRelease,
		OnDestroy:  h.onDestroy,
		Logger:     log.With("part", "deploy"),

		Activity:    gw,
		IdleTimeout: cfg.IdleTimeout,
	})
	h.appToken = mgr.AppForToken
	apiHandler := api.NewServer(&apiEngine{Manager: mgr, DomainStore: domains, logs: parts.logs}, api.ServerOptions{
		Token: token, Version: Version, Logger: log.With("part", "api"), AppToken: mgr.AppForToken,
	})
	h.api = apiHandler
	if err := startServices(ctx, h); err != nil {
		return fmt.Errorf("pier up: %w", err)
	}
	if err := cache.start(ctx, h); err != nil {
		return fmt.Errorf("pier up: %w", err)
	}
	if err := met.start(ctx, h); err != nil {
		return fmt.Errorf("pier up: %w", err)
	}
	if err := startWeb(ctx, h, mgr, parts, met.m, apiHandler); err != nil {
		return fmt.Errorf("pier up: %w", err)
	}
	if err := router.Run(ctx); err != nil {
		return fmt.Errorf("pier up: router: %w", err)
	}

	apiSrv := &http.Server{
		Handler:           apiHandler,
		ReadHeaderTimeout: 10 * time.Second,
	}
	// Bounds against slow and greedy clients, nginx's defaults where it
	// has one: the body and send timeouts (between reads and writes) are
	// the guard's, as http.Server's would cut long streams.
	httpSrv := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       75 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.With("part", "gateway").Handler(), slog.LevelDebug),
	}
	servers := []*http.Server{httpSrv, apiSrv}
	var tg *tlsGateway
	if httpsLn != nil {
		if tg, err = newTLSGateway(ctx, cfg, gw, httpsLn, httpSrv); err != nil {
			return fmt.Errorf("pier up: %w", err)
		}
		defer tg.stop()
		httpSrv.Handler = tg.plainHandler(gw)
		servers = append(servers, tg.srv)
	}
	guarded := gateway.Guard(httpLn, gateway.GuardOptions{BodyTimeout: gateway.DefaultBodyTimeout, SendTimeout: gateway.DefaultSendTimeout})
	errc := make(chan error, 3)
	if tg != nil {
		go func() { errc <- tg.serve() }()
	}
	// The gateway's own HTTP/1.1 loop serves the common requests; it hands
	// every other connection to httpSrv.
	front := gw.Front(guarded, httpSrv.Handler, gateway.FrontOptions{
		ReadHeaderTimeout: httpSrv.ReadHeaderTimeout,
		IdleTimeout:       httpSrv.IdleTimeout,
		Logger:            log.With("part", "gateway"),
		WrapperPrefix:     tg.wrapperPrefix(),
	})
	go func() { errc <- serve(httpSrv, front) }()
	go func() { errc <- serve(apiSrv, apiLn) }()

	log.Info("pier is up", "gateway", httpLn.Addr().String(), "api", apiURL, "home", cfg.Home, "domain", cfg.Domain)
	restored := make(chan struct{})
	go func() {
		defer close(restored)
		if err := mgr.Restore(ctx); err != nil {
			log.Error("restore apps", "err", err)
		}
	}()
	go mgr.SleepIdle(ctx)
	if cfg.Ready != nil {
		cfg.Ready(httpLn.Addr().String(), apiLn.Addr().String())
	}
	if with != nil {
		go func() { errc <- with(ctx, mgr, httpLn.Addr().String()) }()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("pier is stopping")
	cancel()
	shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer done()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() { defer wg.Done(); s.Shutdown(shutdownCtx) }()
	}
	wg.Wait()
	<-restored
	if err := sup.StopAll(shutdownCtx); err != nil {
		log.Warn("stop instances", "err", err)
	}
	return runErr
}

func serve(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// parts are the store handles the engine hands to its parts.
type parts struct {
	apps, releases, instances *store.Bucket
	domains                   *store.Bucket // hosts attached through the API
	bundles                   *store.Objects
	events                    *store.Stream
	logs                      *logStore // opened by run, after openParts
}

func openParts(ctx context.Context, st *store.Store) (*parts, error) {
	var p parts
	var err error
	if p.apps, err = st.Bucket(ctx, "apps", 5); err != nil {
		return nil, err
	}
	if p.releases, err = st.Bucket(ctx, "releases", 1); err != nil {
		return nil, err
	}
	if p.instances, err = st.Bucket(ctx, "instances", 1); err != nil {
		return nil, err
	}
	if p.domains, err = st.Bucket(ctx, "domains", 1); err != nil {
		return nil, err
	}
	if p.bundles, err = st.Objects(ctx, "bundles"); err != nil {
		return nil, err
	}
	if p.events, err = st.Stream(ctx, store.StreamConfig{
		Name: "EVENTS", Subjects: []string{"events.>"}, MaxMsgsPerSubject: 5000,
	}); err != nil {
		return nil, err
	}
	return &p, nil
}

func gatewayRoutes(routes []deploy.Route) []gateway.Route {
	out := make([]gateway.Route, len(routes))
	for i, r := range routes {
		out[i] = gateway.Route{App: r.App, Hosts: r.Hosts, Backends: r.Backends, StaticDir: r.StaticDir, Static: r.Static,
			Wakeable: r.Wakeable, Release: r.Release, Canary: r.Canary, CanaryRelease: r.CanaryRelease, CanaryWeight: r.CanaryWeight,
			H2C: r.H2C, CanaryH2C: r.CanaryH2C}
		for _, c := range r.Cache {
			out[i].Cache = append(out[i].Cache, gateway.CacheRule{Path: c.Path, TTL: c.TTL, Cache: c.Cache})
		}
	}
	return out
}

// adminToken reads the admin token from home, making one the first time.
func adminToken(home string) (string, error) {
	path := filepath.Join(home, "token")
	data, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(data))) >= 32 {
		return strings.TrimSpace(string(data)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read token: %w", err)
	}
	b := make([]byte, 32)
	rand.Read(b)
	token := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write token: %w", err)
	}
	return token, nil
}

// ensureUser gives each app its own UNIX user when pier runs as root.
func ensureUser(ctx context.Context, app string) (*supervisor.User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	return supervisor.EnsureUser(ctx, app)
}

// appsHome is where app directories live. Apps run as their own users, who
// must be able to reach their directory: when home sits under a directory
// others cannot traverse (root's home is 0700), apps live in /var/lib/pier.
func appsHome(home string, log *slog.Logger) string {
	if os.Geteuid() != 0 || traversable(home) {
		return home
	}
	alt := filepath.Join("/var/lib/pier", strings.ReplaceAll(strings.Trim(home, "/"), "/", "_"))
	if err := os.MkdirAll(alt, 0o711); err != nil {
		log.Warn("apps directory", "err", err)
		return home
	}
	os.Chmod("/var/lib/pier", 0o711)
	log.Info("app files live outside the home, which other users cannot reach", "dir", alt)
	return alt
}

// traversable reports whether every directory above dir lets others pass.
func traversable(dir string) bool {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == "/" {
			return true
		}
	}
}

// reachable turns a listener address into one a local client can dial.
func reachable(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// portOf is the port a listener listens on.
func portOf(a net.Addr) int {
	_, port, _ := net.SplitHostPort(a.String())
	n, _ := strconv.Atoi(port)
	return n
}

// apiEngine adapts the deploy manager and the log stream to the API.
type apiEngine struct {
	*deploy.Manager
	*deploy.DomainStore
	logs *logStore
}

var _ api.DomainEngine = (*apiEngine)(nil)

func (e *apiEngine) Run(ctx context.Context, app string, argv []string, out func(stream, text string)) (int, error) {
	return e.Manager.Run(ctx, app, argv, runOutput(out))
}

// runOutput hands a one-off run's lines, with their stream, to the API.
type runOutput func(stream, text string)

func (f runOutput) Write(p []byte) (int, error) { f("stdout", string(p)); return len(p), nil }
func (f runOutput) WriteLine(l supervisor.Line) error {
	f(l.Stream, l.Text)
	return nil
}

var _ io.Writer = runOutput(nil)

func (e *apiEngine) Logs(ctx context.Context, app string, q api.LogQuery, fn func(api.LogLine) error) error {
	return readLogs(ctx, e.logs, app, q, fn)
}

// Destroy deletes the app and its stored logs.
func (e *apiEngine) Destroy(ctx context.Context, app string) error {
	if err := e.Manager.Destroy(ctx, app); err != nil {
		return err
	}
	return e.logs.Purge(ctx, app)
}
