package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Drain is where an app's log lines are sent as they are written: a
// syslog server (syslog+tcp://host:port, syslog+tls://host:port; RFC 5424
// with octet-counted framing) or an HTTP(S) endpoint taking NDJSON
// batches. Routes: GET and POST /v1/apps/{app}/drains ({"url": ...}),
// DELETE /v1/apps/{app}/drains/{id}.
type Drain struct {
	ID      string    `json:"id"`
	App     string    `json:"app"`
	URL     string    `json:"url"` // passwords masked
	Created time.Time `json:"created"`
	// What the engine did since it started.
	Sent      uint64 `json:"sent"`
	Dropped   uint64 `json:"dropped"` // oldest lines dropped while the drain was down
	Waiting   int    `json:"waiting"`
	LastError string `json:"last_error,omitempty"`
}

// Drains lists an app's log drains.
func (c *Client) Drains(ctx context.Context, app string) ([]Drain, error) {
	var ds []Drain
	if err := c.getJSON(ctx, appPath(app, "/drains"), nil, &ds); err != nil {
		return nil, err
	}
	return ds, nil
}

// AddDrain adds a log drain to an app.
func (c *Client) AddDrain(ctx context.Context, app, drainURL string) (*Drain, error) {
	resp, err := c.sendJSON(ctx, http.MethodPost, appPath(app, "/drains"), map[string]string{"url": drainURL})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var d Drain
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return nil, fmt.Errorf("reading the drain: %w", err)
	}
	return &d, nil
}

// RemoveDrain removes one of an app's log drains.
func (c *Client) RemoveDrain(ctx context.Context, app, id string) error {
	resp, err := c.do(ctx, http.MethodDelete, appPath(app, "/drains/"+url.PathEscape(id)), nil, nil, "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
