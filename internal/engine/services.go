package engine

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"time"

	"pier/internal/errortrack"
	"pier/internal/manifest"
	"pier/internal/store"
	"pier/internal/supervisor"
	"pier/internal/tasks"
)

// hub is what the engine's services (tasks, errors, metrics, search) plug
// into: routes on the API and on the gateway's internal prefix, environment
// for app processes, taps on process output, and followers of each app's
// current manifest. startServices fills it before any app runs; after that
// it is only read.
type hub struct {
	log        *slog.Logger
	store      *store.Store
	home       string        // $PIER_HOME
	domain     string        // apps are served at <app>.<domain>
	gatewayURL string        // the gateway, as apps and services on this node reach it
	apiURL     string        // the API, likewise
	beanstalkd string        // where the beanstalkd-protocol listener binds
	tasksMem   int64         // bound on task bodies in memory (tasks.Options.Memory)
	searchIdle time.Duration // search.Options.IdleClose
	// appToken resolves an app's own token (PIER_TOKEN) to its name.
	appToken func(ctx context.Context, token string) (app string, ok bool)
	// errors is what pier up says about error tracking.
	errors errorsConfig

	api      apiMux         // routes on the API listener, behind its token check
	internal *http.ServeMux // routes under /_pier/ on every gateway host; no auth applied

	env      []func(app, token, release string) map[string]string
	output   []func(supervisor.Line)
	releases []func(app string, release int, m *manifest.Manifest)
	destroys []func(app string)
	stops    []func() // run in reverse order when the engine stops

	// Set by their services; metrics reads queue figures and error
	// counts from them.
	tasks   *tasks.Service
	tracker *errortrack.Tracker
}

// apiMux is the part of the API server services mount routes on: Handle
// behind the API token check (admin token, or an app's own token limited
// to /v1/apps/<app>/...), HandlePublic for routes that authenticate
// themselves.
type apiMux interface {
	Handle(pattern string, h http.Handler)
	HandlePublic(pattern string, h http.Handler)
}

// startServices starts the engine's optional services. Each one registers
// what it adds on h; a failure stops the engine from starting.
func startServices(ctx context.Context, h *hub) error {
	if err := startErrors(ctx, h); err != nil {
		return err
	}
	if err := startSearch(ctx, h); err != nil {
		return err
	}
	if err := startTasks(ctx, h); err != nil {
		return err
	}
	if err := startDrains(ctx, h); err != nil {
		return err
	}
	return nil
}

func (h *hub) serviceEnv(app, token, release string) map[string]string {
	env := map[string]string{"PIER_API": h.apiURL, "PIER_TOKEN": token}
	for _, f := range h.env {
		maps.Copy(env, f(app, token, release))
	}
	return env
}

func (h *hub) onOutput(l supervisor.Line) {
	for _, f := range h.output {
		f(l)
	}
}

func (h *hub) onRelease(app string, release int, m *manifest.Manifest) {
	for _, f := range h.releases {
		f(app, release, m)
	}
}

func (h *hub) onDestroy(app string) {
	for _, f := range h.destroys {
		f(app)
	}
}

func (h *hub) stop() {
	for i := len(h.stops) - 1; i >= 0; i-- {
		h.stops[i]()
	}
}
