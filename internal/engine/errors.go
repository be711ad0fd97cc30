package engine

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"pier/internal/errortrack"
	"pier/internal/manifest"
	"pier/internal/supervisor"
)

// errorsConfig is what pier up says about error tracking.
type errorsConfig struct {
	retention time.Duration // each app's events are kept this long unless its config says otherwise; 0 = 30 days
	nodeRate  float64       // events/s this node takes from all apps; 0 = 1000, negative = no cap
}

// startErrors plugs the error tracker (issue #5) into the hub: Sentry
// ingestion under /_pier/errors/ on every gateway host and at /api/ on the
// API listener, SENTRY_DSN for every process, crash reports from process
// output, and its API under /v1/apps/{app}/errors.
func startErrors(ctx context.Context, h *hub) error {
	t, err := errortrack.New(errortrack.Options{
		Store:             h.store,
		DSNBase:           h.gatewayURL + "/_pier/errors",
		Logger:            h.log.With("part", "errors"),
		MaxAge:            h.errors.retention,
		NodeRatePerSecond: h.errors.nodeRate,
	})
	if err != nil {
		return fmt.Errorf("errors: %w", err)
	}
	if err := t.Start(ctx); err != nil {
		return fmt.Errorf("errors: %w", err)
	}
	h.tracker = t
	ingest := t.Ingest()
	h.internal.Handle("/_pier/errors/", ingest)
	h.api.HandlePublic("/api/{project}/envelope/", ingest)
	h.api.HandlePublic("/api/{project}/store/", ingest)
	t.Routes(func(pattern string, handler http.Handler) { h.api.Handle(pattern, handler) })
	h.env = append(h.env, func(app, _, release string) map[string]string {
		env := t.Env(app)
		if env != nil {
			// SDKs tag events with it, so grouping knows the release
			// even while two run side by side during a rollout.
			env["SENTRY_RELEASE"] = release
		}
		return env
	})
	h.output = append(h.output, func(l supervisor.Line) {
		t.Output(errortrack.Line{Time: l.Time, App: l.App, Release: l.Release, Process: l.Process,
			Instance: l.Instance, Stream: l.Stream, Text: l.Text})
	})
	h.releases = append(h.releases, func(app string, release int, _ *manifest.Manifest) { t.SetRelease(app, release) })
	h.destroys = append(h.destroys, t.Destroy)
	return nil
}
