package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Cookie names.
const (
	sessionCookie = "pier_session"
	loginCookie   = "pier_login" // the login form's CSRF token (double submit)
)

// maxSessions bounds the sessions kept; the oldest go first.
const maxSessions = 1000

// session is one logged-in browser.
type session struct {
	id      string
	csrf    string
	expires time.Time
}

// sessions are the logged-in browsers, in memory.
type sessions struct {
	ttl time.Duration
	now func() time.Time

	mu   sync.Mutex // guards byID
	byID map[string]*session
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, now: now, byID: map[string]*session{}}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// create starts a session, dropping expired ones (and the oldest when
// too many are kept).
func (ss *sessions) create() *session {
	now := ss.now()
	se := &session{id: randomHex(32), csrf: randomHex(32), expires: now.Add(ss.ttl)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var oldest *session
	for id, o := range ss.byID {
		if !now.Before(o.expires) {
			delete(ss.byID, id)
			continue
		}
		if oldest == nil || o.expires.Before(oldest.expires) {
			oldest = o
		}
	}
	if len(ss.byID) >= maxSessions && oldest != nil {
		delete(ss.byID, oldest.id)
	}
	ss.byID[se.id] = se
	return se
}

// get returns the live session with id, or nil.
func (ss *sessions) get(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	se := ss.byID[id]
	if se == nil {
		return nil
	}
	if !ss.now().Before(se.expires) {
		delete(ss.byID, id)
		return nil
	}
	return se
}

func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, id)
}

type sessionKey struct{}

func sessionFrom(ctx context.Context) *session {
	se, _ := ctx.Value(sessionKey{}).(*session)
	return se
}

// authed lets requests with a live session through. Others are sent to
// the login page (pages) or refused with 401 (fragments, streams, htmx).
// A POST must also carry the session's CSRF token and a same-host Origin.
func (s *Server) authed(fn http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var se *session
		if c, err := r.Cookie(sessionCookie); err == nil {
			se = s.sessions.get(c.Value)
		}
		if se == nil {
			if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" && !strings.HasSuffix(r.URL.Path, "/stream") && !strings.HasSuffix(r.URL.Path, ".json") {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			w.Header().Set("HX-Redirect", "/login")
			http.Error(w, "not logged in (or the session expired): log in again at /login", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) {
				http.Error(w, "refused: the request came from another site", http.StatusForbidden)
				return
			}
			got := r.Header.Get("X-CSRF-Token")
			if got == "" {
				got = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(se.csrf)) != 1 {
				http.Error(w, "refused: missing or wrong CSRF token (reload the page and try again)", http.StatusForbidden)
				return
			}
		}
		fn(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, se)))
	})
}

// sameOrigin is false when the browser says the request came from a page
// of another host. Browsers send Origin with every POST; its absence
// (other clients) is left to the CSRF token.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, r, http.StatusOK, "")
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, problem string) {
	csrf := randomHex(16)
	http.SetCookie(w, &http.Cookie{
		Name: loginCookie, Value: csrf, Path: "/login", MaxAge: 3600,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	s.render(w, status, "login", map[string]any{
		"Title": "Log in", "LoginCSRF": csrf, "Next": safeNext(r.FormValue("next")), "Problem": problem,
	})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" || !sameOrigin(r) ||
		subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		s.renderLogin(w, r, http.StatusForbidden, "The form expired or came from elsewhere: try again.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(r.PostFormValue("token"))), []byte(s.opts.Token)) != 1 {
		s.log.Warn("dashboard login refused", "remote", r.RemoteAddr)
		s.renderLogin(w, r, http.StatusUnauthorized, "Wrong token. The admin token is in $PIER_HOME/token.")
		return
	}
	se := s.sessions.create()
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: se.id, Path: "/", Expires: se.expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/login", MaxAge: -1})
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	s.sessions.drop(sessionFrom(r.Context()).id)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a post-login destination on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.HasPrefix(next, "/login") {
		return "/"
	}
	return next
}
