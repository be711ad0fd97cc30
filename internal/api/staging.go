package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
)

// Staging is the one environment an app can have beside production: a
// separate copy of the app, named StagingApp(app), deployed with
// `pier deploy --to staging` and promoted with `pier promote --from staging`.
const Staging = "staging"

// StagingApp is the name of app's staging copy. The copy is an app of its
// own (its own instances, token, queues, logs and errors), so it is served
// at "<app>-staging.<domain>" the way every app is served at
// "<name>.<domain>"; one label more under the engine's domain, which the
// same wildcard DNS record and certificate cover.
func StagingApp(app string) string { return app + "-" + Staging }

// StagingEngine is what staging copies need from the engine, found on an
// Engine by type assertion: without it, deploy ?to=staging and promote
// ?from=staging answer 501.
type StagingEngine interface {
	// DeployStaging deploys bundle to app's staging copy, making the copy
	// (with app's config vars) on first use; app's own release and traffic
	// are left alone.
	DeployStaging(ctx context.Context, app string, bundle io.Reader, emit func(Event)) (int, error)
	// PromoteFrom makes a new release of app from the current release of
	// its copy in environment from ("staging") and rolls it out.
	PromoteFrom(ctx context.Context, app, from string, emit func(Event)) (int, error)
}

// DeployStaging uploads a bundle like Deploy, to app's staging copy.
func (c *Client) DeployStaging(ctx context.Context, app string, bundle io.Reader, onEvent func(Event)) (*Event, error) {
	q := url.Values{"to": {Staging}}
	resp, err := c.do(ctx, http.MethodPost, appPath(app, "/deploy"), q, bundle, "application/gzip")
	if err != nil {
		return nil, err
	}
	return readEvents(ctx, resp, onEvent)
}

// PromoteFrom makes the current release of app's copy in environment from
// ("staging") the app's production release and follows it like Deploy.
func (c *Client) PromoteFrom(ctx context.Context, app, from string, onEvent func(Event)) (*Event, error) {
	q := url.Values{"from": {from}}
	resp, err := c.do(ctx, http.MethodPost, appPath(app, "/promote"), q, nil, "")
	if err != nil {
		return nil, err
	}
	return readEvents(ctx, resp, onEvent)
}

// deployTo answers POST /v1/apps/{app}/deploy?to=ENV.
func (s *Server) deployTo(w http.ResponseWriter, r *http.Request, app, to string) {
	if to != Staging {
		sendError(w, http.StatusBadRequest, "to: the only environment besides production is "+Staging+" (deploy without to= for production)")
		return
	}
	if r.URL.Query().Get("canary") != "" {
		sendError(w, http.StatusBadRequest, "a deploy goes either to staging or out as a canary, not both")
		return
	}
	se, ok := s.eng.(StagingEngine)
	if !ok {
		sendError(w, http.StatusNotImplemented, "this engine does not keep staging copies")
		return
	}
	s.stream(w, StagingApp(app), func(emit func(Event)) (int, error) {
		return se.DeployStaging(r.Context(), app, r.Body, emit)
	})
}

// promoteFrom answers POST /v1/apps/{app}/promote?from=ENV.
func (s *Server) promoteFrom(w http.ResponseWriter, r *http.Request, app, from string) {
	se, ok := s.eng.(StagingEngine)
	if !ok {
		sendError(w, http.StatusNotImplemented, "this engine does not keep staging copies")
		return
	}
	s.stream(w, app, func(emit func(Event)) (int, error) {
		return se.PromoteFrom(r.Context(), app, from, emit)
	})
}
