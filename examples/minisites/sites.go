package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"html/template"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Tenant is one business and what its mini-site shows.
type Tenant struct {
	Host     string    `json:"host"`
	Name     string    `json:"name"`
	Trade    string    `json:"trade"`
	City     string    `json:"city"`
	Street   string    `json:"street"`
	Phone    string    `json:"phone"`
	Since    int       `json:"since"`
	Hours    []string  `json:"hours"`
	Services []Service `json:"services"`
}

// Service is one line of a business's price list.
type Service struct {
	Name  string `json:"name"`
	Price string `json:"price"`
}

var (
	owners  = []string{"Martin", "Bernard", "Dubois", "Moreau", "Laurent", "Garcia", "Rossi", "Schmidt", "Novak", "Silva", "Jansen", "Kowalski"}
	trades  = []string{"Bakery", "Plumbing", "Florist", "Garage", "Hair Salon", "Bookshop", "Locksmith", "Dentist", "Pizzeria", "Bike Repair", "Tailor", "Optician"}
	cities  = []string{"Lyon", "Porto", "Ghent", "Turin", "Leipzig", "Krakow", "Utrecht", "Nantes", "Bilbao", "Graz"}
	streets = []string{"Market Street", "Station Road", "Church Lane", "Harbour Quay", "Mill Street", "Park Avenue", "High Street"}
	extras  = []string{"Express service", "Home visit", "Gift wrapping", "Weekend opening", "Consultation", "Annual check", "Delivery", "Repair", "Custom order"}
)

// MakeTenant makes up the data of host's business, the same every time.
func MakeTenant(host string) Tenant {
	h := fnv.New64a()
	h.Write([]byte(host))
	seed := h.Sum64()
	r := rand.New(rand.NewPCG(seed, seed>>17|1))
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	t := Tenant{
		Host:   host,
		Trade:  pick(trades),
		City:   pick(cities),
		Street: fmt.Sprintf("%d %s", 1+r.IntN(180), pick(streets)),
		Phone:  fmt.Sprintf("+33 4 %02d %02d %02d %02d", r.IntN(100), r.IntN(100), r.IntN(100), r.IntN(100)),
		Since:  1950 + r.IntN(74),
	}
	t.Name = pick(owners) + " " + t.Trade
	open, closes := 7+r.IntN(3), 17+r.IntN(4)
	t.Hours = []string{
		fmt.Sprintf("Monday to Friday: %d:00 to %d:00", open, closes),
		fmt.Sprintf("Saturday: %d:00 to 13:00", open+1),
	}
	for _, i := range r.Perm(len(extras))[:3+r.IntN(4)] {
		t.Services = append(t.Services, Service{Name: extras[i], Price: fmt.Sprintf("%d.%02d EUR", 10+r.IntN(190), r.IntN(100))})
	}
	return t
}

// Sites serves every tenant's pages.
type Sites struct {
	// DataDir holds <host>.json tenant files; a host without one gets
	// MakeTenant's data. "" = made-up data only.
	DataDir string
	// MaxAge is the s-maxage the pages are sent with, for a shared
	// cache in front; 0 sends no Cache-Control.
	MaxAge int
}

var pages = template.Must(template.New("layout").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.T.Name}} · {{.T.City}}</title></head>
<body><header><h1>{{.T.Name}}</h1><p class="host">{{.T.Host}}</p>
<nav><a href="/">Home</a> · <a href="/services">Services</a> · <a href="/contact">Contact</a></nav></header>
<main>{{template "page" .}}</main>
<footer>{{.T.Trade}} in {{.T.City}} since {{.T.Since}}</footer></body></html>
`))

var pageBodies = map[string]string{
	"/":         `{{define "page"}}<p>Welcome to {{.T.Name}}, your {{.T.Trade}} on {{.T.Street}}, {{.T.City}}.</p><ul>{{range .T.Hours}}<li>{{.}}</li>{{end}}</ul>{{end}}`,
	"/services": `{{define "page"}}<h2>Services</h2><table>{{range .T.Services}}<tr><td>{{.Name}}</td><td>{{.Price}}</td></tr>{{end}}</table>{{end}}`,
	"/contact":  `{{define "page"}}<h2>Contact</h2><address>{{.T.Street}}, {{.T.City}}<br>{{.T.Phone}}</address>{{end}}`,
}

// templates are the layout with each page's body, by path.
var templates = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for path, body := range pageBodies {
		out[path] = template.Must(template.Must(pages.Clone()).Parse(body))
	}
	return out
}()

// Handler serves the pages and /healthz.
func (s *Sites) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /", s.page)
	return mux
}

func (s *Sites) page(w http.ResponseWriter, r *http.Request) {
	tmpl, ok := templates[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	t, err := s.tenant(host)
	if err != nil {
		http.Error(w, "no such site", http.StatusNotFound)
		return
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, struct{ T Tenant }{t}); err != nil {
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Tenant", host)
	if s.MaxAge > 0 {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, s-maxage=%d", s.MaxAge))
	}
	w.Write(buf.Bytes())
}

// tenant loads host's data file, or makes its data up.
func (s *Sites) tenant(host string) (Tenant, error) {
	if host == "" || strings.ContainsAny(host, `/\`) || strings.HasPrefix(host, ".") {
		return Tenant{}, errors.New("bad host")
	}
	if s.DataDir != "" {
		data, err := os.ReadFile(filepath.Join(s.DataDir, host+".json"))
		switch {
		case err == nil:
			var t Tenant
			if err := json.Unmarshal(data, &t); err != nil {
				return Tenant{}, fmt.Errorf("tenant %s: %w", host, err)
			}
			return t, nil
		case !errors.Is(err, fs.ErrNotExist):
			return Tenant{}, err
		}
	}
	return MakeTenant(host), nil
}
