package errortrack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Alert is what an app's webhook receives, as JSON, for a new issue or a
// regression.
type Alert struct {
	Type    string    `json:"type"` // new_issue | regression
	App     string    `json:"app"`
	Time    time.Time `json:"time"`
	Issue   Issue     `json:"issue"`
	Dropped int       `json:"dropped,omitempty"` // alerts skipped by the rate cap since the last one sent
}

// alerter posts alerts to each app's webhook, at most AlertsPerHour per
// app, from one goroutine so a slow webhook never slows grouping.
type alerter struct {
	client *http.Client
	log    *slog.Logger
	st     *storage
	queue  chan Alert

	mu      sync.Mutex // guards caps, dropped
	caps    map[string]*rate.Limiter
	dropped map[string]int
}

func newAlerter(client *http.Client, log *slog.Logger, st *storage) *alerter {
	return &alerter{client: client, log: log, st: st, queue: make(chan Alert, 1024),
		caps: map[string]*rate.Limiter{}, dropped: map[string]int{}}
}

// send queues an alert; it never blocks (a full queue drops it).
func (a *alerter) send(app string, kind alertKind, is Issue) {
	is.UserKeys = nil
	select {
	case a.queue <- Alert{Type: string(kind), App: app, Time: time.Now().UTC(), Issue: is}:
	default:
		a.log.Warn("alert queue full; alert dropped", "app", app, "issue", is.ID)
	}
}

func (a *alerter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case al := <-a.queue:
			a.deliver(ctx, al)
		}
	}
}

func (a *alerter) deliver(ctx context.Context, al Alert) {
	cfg, err := a.st.appConfig(ctx, al.App)
	if err != nil || cfg.Webhook == "" {
		return
	}
	perHour := cfg.AlertsPerHour
	if perHour <= 0 {
		perHour = 20
	}
	a.mu.Lock()
	lim, ok := a.caps[al.App]
	if !ok || lim.Burst() != perHour {
		lim = rate.NewLimiter(rate.Limit(float64(perHour)/3600), perHour)
		a.caps[al.App] = lim
	}
	if !lim.Allow() {
		a.dropped[al.App]++
		a.mu.Unlock()
		a.log.Info("alert over the app's cap; not sent", "app", al.App, "issue", al.Issue.ID, "per_hour", perHour)
		return
	}
	al.Dropped = a.dropped[al.App]
	a.dropped[al.App] = 0
	a.mu.Unlock()
	if err := a.post(ctx, cfg.Webhook, al); err != nil {
		a.log.Warn("alert webhook failed", "app", al.App, "issue", al.Issue.ID, "err", err)
	}
}

func (a *alerter) post(ctx context.Context, url string, al Alert) error {
	body, err := json.Marshal(al)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pier-errortrack")
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
