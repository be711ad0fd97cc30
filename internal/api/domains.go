package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Domain is a host attached to an app through the API (pier domains add),
// beside the domains its manifest lists. Routes:
//
//	GET  /v1/domains                        -> [Domain], every app's
//	GET  /v1/apps/{app}/domains             -> [Domain]
//	POST /v1/apps/{app}/domains             {"hosts":[...]} -> DomainChange
//	POST /v1/apps/{app}/domains/remove      {"hosts":[...]} -> DomainChange
//	DELETE /v1/apps/{app}/domains/{host}    -> DomainChange
//
// A batch is all or nothing: one invalid host is a 400, one host claimed by
// another app a 409, one host to remove that the app does not have a 404.
type Domain struct {
	Host string `json:"host"` // lower-cased; "*.suffix" for a wildcard
	App  string `json:"app"`
}

// DomainList is the body of a batch of domains to add or remove.
type DomainList struct {
	Hosts []string `json:"hosts"`
}

// DomainChange says what a batch did.
type DomainChange struct {
	App       string `json:"app"`
	Added     int    `json:"added"`
	Removed   int    `json:"removed"`
	Unchanged int    `json:"unchanged"` // already attached (add)
	Total     int    `json:"total"`     // the app's API domains afterwards
}

// MaxDomainBatch is the most hosts one request may add or remove.
const MaxDomainBatch = 200_000

// DomainEngine is what the domain routes need from the engine, found on an
// Engine by type assertion: without it, they answer 501.
type DomainEngine interface {
	// ListDomains lists the domains attached to app, or to every app
	// when app is "", sorted by host.
	ListDomains(ctx context.Context, app string) ([]Domain, error)
	AddDomains(ctx context.Context, app string, hosts []string) (DomainChange, error)
	RemoveDomains(ctx context.Context, app string, hosts []string) (DomainChange, error)
}

func (s *Server) domainEngine(w http.ResponseWriter) (DomainEngine, bool) {
	de, ok := s.eng.(DomainEngine)
	if !ok {
		sendError(w, http.StatusNotImplemented, "this engine does not attach domains")
	}
	return de, ok
}

func (s *Server) listDomains(w http.ResponseWriter, r *http.Request) {
	if de, ok := s.domainEngine(w); ok {
		ds, err := de.ListDomains(r.Context(), r.PathValue("app"))
		s.reply(w, ds, err)
	}
}

func (s *Server) changeDomains(w http.ResponseWriter, r *http.Request, remove bool) {
	de, ok := s.domainEngine(w)
	if !ok {
		return
	}
	var req DomainList
	// A batch of 100,000 hosts is a few MB: more than decode allows.
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20))
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			sendError(w, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		sendError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return
	}
	switch {
	case len(req.Hosts) == 0:
		sendError(w, http.StatusBadRequest, `no hosts: send {"hosts":["shop.example.com", ...]}`)
		return
	case len(req.Hosts) > MaxDomainBatch:
		sendError(w, http.StatusBadRequest, fmt.Sprintf("%d hosts in one batch; the most is %d", len(req.Hosts), MaxDomainBatch))
		return
	}
	op := de.AddDomains
	if remove {
		op = de.RemoveDomains
	}
	ch, err := op(r.Context(), r.PathValue("app"), req.Hosts)
	s.reply(w, ch, err)
}

func (s *Server) addDomains(w http.ResponseWriter, r *http.Request) { s.changeDomains(w, r, false) }

func (s *Server) removeDomains(w http.ResponseWriter, r *http.Request) {
	s.changeDomains(w, r, true)
}

func (s *Server) removeDomain(w http.ResponseWriter, r *http.Request) {
	if de, ok := s.domainEngine(w); ok {
		ch, err := de.RemoveDomains(r.Context(), r.PathValue("app"), []string{r.PathValue("host")})
		s.reply(w, ch, err)
	}
}

// Domains lists the domains attached to app through the API, or to every
// app when app is "".
func (c *Client) Domains(ctx context.Context, app string) ([]Domain, error) {
	path := "/v1/domains"
	if app != "" {
		path = appPath(app, "/domains")
	}
	var ds []Domain
	if err := c.getJSON(ctx, path, nil, &ds); err != nil {
		return nil, err
	}
	return ds, nil
}

// AddDomains attaches hosts to app in one batch.
func (c *Client) AddDomains(ctx context.Context, app string, hosts []string) (*DomainChange, error) {
	return c.domainBatch(ctx, appPath(app, "/domains"), hosts)
}

// RemoveDomains detaches hosts from app in one batch.
func (c *Client) RemoveDomains(ctx context.Context, app string, hosts []string) (*DomainChange, error) {
	return c.domainBatch(ctx, appPath(app, "/domains/remove"), hosts)
}

func (c *Client) domainBatch(ctx context.Context, path string, hosts []string) (*DomainChange, error) {
	resp, err := c.sendJSON(ctx, http.MethodPost, path, DomainList{Hosts: hosts})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ch DomainChange
	if err := json.NewDecoder(resp.Body).Decode(&ch); err != nil {
		return nil, fmt.Errorf("reading the answer to POST %s: %w", path, err)
	}
	return &ch, nil
}
