package errortrack

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"pier/internal/store"
)

// Ingest returns the handler of the Sentry ingestion endpoints. It serves
// any path ending in
//
//	.../api/<project>/envelope/   envelope of items (event, transaction, session, ...)
//	.../api/<project>/store/      one event as JSON (the legacy endpoint)
//
// so the engine can mount it under /_pier/errors/ on the gateway and at
// /api/ on the API listener. Answers are Sentry's: 200 {"id": "<event id>"},
// 400/401/403/404/413 {"detail": "<reason>"}, 429 with Retry-After and
// X-Sentry-Rate-Limits.
func (t *Tracker) Ingest() http.Handler { return http.HandlerFunc(t.serveIngest) }

// sentryError is a refusal with the status and reason the SDK sees.
type sentryError struct {
	status int
	detail string
}

func (e *sentryError) Error() string { return e.detail }

func refuse(status int, format string, args ...any) *sentryError {
	return &sentryError{status: status, detail: fmt.Sprintf(format, args...)}
}

func (t *Tracker) serveIngest(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "X-Sentry-Error, X-Sentry-Rate-Limits, Retry-After")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Content-Encoding, X-Sentry-Auth, Authorization")
		w.WriteHeader(http.StatusOK)
		return
	}
	id, err := t.ingest(r.Context(), w, r)
	if err != nil {
		var se *sentryError
		if !errors.As(err, &se) {
			t.log.Error("errortrack: ingest", "err", err)
			se = refuse(http.StatusServiceUnavailable, "could not store the event; try again")
			h.Set("Retry-After", "5")
		}
		h.Set("X-Sentry-Error", se.detail)
		writeJSON(w, se.status, map[string]string{"detail": se.detail})
		return
	}
	if id == "" {
		writeJSON(w, http.StatusOK, map[string]any{})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id})
}

// ingest checks, parses and stores one request; it returns the id of the
// event stored, if any.
func (t *Tracker) ingest(ctx context.Context, w http.ResponseWriter, r *http.Request) (string, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		return "", refuse(http.StatusMethodNotAllowed, "use POST")
	}
	projectID, endpoint, ok := splitIngestPath(r.URL.Path)
	if !ok {
		return "", refuse(http.StatusNotFound, "unknown endpoint %q: want /api/<project>/envelope/ or /api/<project>/store/", r.URL.Path)
	}
	id, err := strconv.Atoi(projectID)
	if err != nil || id <= 0 {
		return "", refuse(http.StatusBadRequest, "project id %q is not a positive number", clip(projectID, 32))
	}
	p, err := t.st.projectByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", refuse(http.StatusNotFound, "no project %d (check SENTRY_DSN)", id)
	}
	if err != nil {
		return "", err
	}
	a, authErr := requestAuth(r)
	if authErr == nil && subtle.ConstantTimeCompare([]byte(a.Key), []byte(p.Key)) != 1 {
		// Refuse before reading what may be a large body.
		return "", refuse(http.StatusForbidden, "the key is not project %d's (check SENTRY_DSN)", id)
	}

	body, err := readBody(r, t.opts.MaxBodyBytes)
	if errors.Is(err, errTooLarge) {
		return "", refuse(http.StatusRequestEntityTooLarge, "%v", err)
	}
	if errors.Is(err, errBadEnvelope) {
		return "", refuse(http.StatusBadRequest, "%v", err)
	}
	if err != nil {
		return "", refuse(http.StatusBadRequest, "%v", err)
	}

	var items []Item
	envID := ""
	if endpoint == "store" {
		items = []Item{{Type: "event", Payload: body}}
	} else {
		env, err := parseEnvelope(body)
		if err != nil {
			return "", refuse(http.StatusBadRequest, "%v", err)
		}
		items, envID = env.Items, env.EventID
		if authErr != nil && env.DSN != "" { // tunnelled envelopes carry their DSN
			if k := dsnKey(env.DSN); k != "" {
				a, authErr = auth{Key: k}, nil
			}
		}
	}
	if authErr != nil {
		return "", refuse(http.StatusUnauthorized, "%v", authErr)
	}
	if subtle.ConstantTimeCompare([]byte(a.Key), []byte(p.Key)) != 1 {
		return "", refuse(http.StatusForbidden, "the key is not project %d's (check SENTRY_DSN)", id)
	}

	var events []*Event
	now := time.Now()
	for i, it := range items {
		switch it.Type {
		case "event":
		default:
			// transaction, session(s), client_report, attachment, check_in,
			// profile, replay, ...: accepted and dropped; pier tracks errors.
			continue
		}
		if len(it.Payload) > t.opts.MaxEventBytes {
			return "", refuse(http.StatusRequestEntityTooLarge, "item %d: event of %d bytes, the cap is %d", i+1, len(it.Payload), t.opts.MaxEventBytes)
		}
		ev, err := parseEvent(it.Payload, now)
		if err != nil {
			return "", refuse(http.StatusBadRequest, "item %d: %v", i+1, err)
		}
		if ev.ID == "" {
			ev.ID = envID
		}
		if ev.ID == "" {
			ev.ID = newEventID()
		}
		ev.App, ev.Source = p.App, "sdk"
		events = append(events, ev)
	}
	if len(events) == 0 {
		return envID, nil
	}
	cfg, err := t.st.appConfig(ctx, p.App)
	if err != nil {
		return "", err
	}
	if scope, wait := t.limits.allow(p.App, len(events), cfg, now); scope != limitNone {
		secs := strconv.Itoa(int(wait / time.Second))
		w.Header().Set("Retry-After", secs)
		w.Header().Set("X-Sentry-Rate-Limits", secs+":error;default;security:"+string(scope))
		if scope == limitNode {
			return "", refuse(http.StatusTooManyRequests, "this pier node takes no more events for now (its cap over all apps); retry in %ss", secs)
		}
		return "", refuse(http.StatusTooManyRequests, "app %s sends more than its event rate; retry in %ss", p.App, secs)
	}
	for _, ev := range events {
		if err := t.store(ctx, ev); err != nil {
			return "", err
		}
	}
	return events[0].ID, nil
}

// splitIngestPath finds "<project>" and "envelope"|"store" at the end of
// p, which ends in /api/<project>/<endpoint>[/].
func splitIngestPath(p string) (project, endpoint string, ok bool) {
	p = strings.TrimSuffix(p, "/")
	i := strings.LastIndex(p, "/api/")
	if i < 0 {
		return "", "", false
	}
	project, endpoint, ok = strings.Cut(p[i+len("/api/"):], "/")
	if !ok || project == "" || (endpoint != "envelope" && endpoint != "store") {
		return "", "", false
	}
	return project, endpoint, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
