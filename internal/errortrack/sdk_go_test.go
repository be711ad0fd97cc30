package errortrack

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
)

type orderError struct{ id int }

func (e *orderError) Error() string { return fmt.Sprintf("order %d not found", e.id) }

// failOrder is one place in the code that errs; each call site of
// sentry.CaptureException below is the same in-app stack but for lines.
func failOrder(id int) error { return &orderError{id: id} }

// TestSentryGo drives the real sentry-go SDK against the tracker through
// the gateway-style DSN (with the /_pier/errors path prefix): exceptions
// with varying values group into one issue by type and stack, messages
// group by normalised text, a custom fingerprint wins over both, and tags,
// breadcrumbs, user, release and environment reach the issue and its
// latest event.
func TestSentryGo(t *testing.T) {
	e := newEnv(t, nil)
	dsn := e.dsn("shop")
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn: dsn, Release: "shop@1.2.0", Environment: "staging", AttachStacktrace: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	hub := sentry.NewHub(client, sentry.NewScope())
	hub.ConfigureScope(func(s *sentry.Scope) {
		s.SetTag("region", "eu")
		s.SetUser(sentry.User{ID: "42", Email: "ada@example.com"})
	})
	hub.AddBreadcrumb(&sentry.Breadcrumb{Category: "auth", Message: "user logged in", Level: sentry.LevelInfo}, nil)

	for i := range 4 {
		if i == 3 {
			hub.Scope().SetUser(sentry.User{ID: "43"})
		}
		hub.CaptureException(failOrder(100 + i)) // one call site: one stack
	}
	hub.CaptureMessage("payment 1234 declined for card 9f8e7d6c5b4a")
	hub.CaptureMessage("payment 99 declined for card 0a1b2c3d4e5f")
	hub.WithScope(func(s *sentry.Scope) {
		s.SetFingerprint([]string{"payment-gateway-down"})
		hub.CaptureException(errors.New("dial tcp: connection refused"))
		hub.CaptureMessage("gateway timeout")
	})
	if !client.Flush(10 * time.Second) {
		t.Fatal("sentry-go did not flush")
	}

	issues := e.waitIssues("shop", "8 events in 3 issues", func(is []Issue) bool {
		return len(is) == 3 && totalCount(is) == 8
	})
	order := byTitle(issues, "order")
	if order == nil || order.Count != 4 || order.GroupedBy != "exception" {
		t.Fatalf("order issue: %+v", order)
	}
	if order.Users != 2 {
		t.Errorf("order issue users: got %d, want 2", order.Users)
	}
	if order.FirstRelease != "shop@1.2.0" || order.LastRelease != "shop@1.2.0" {
		t.Errorf("releases: got %q..%q", order.FirstRelease, order.LastRelease)
	}
	if len(order.Environments) != 1 || order.Environments[0] != "staging" {
		t.Errorf("environments: %v", order.Environments)
	}
	if order.Tags["region"]["eu"] != 4 {
		t.Errorf("tags: %v", order.Tags)
	}
	msg := byTitle(issues, "payment")
	if msg == nil || msg.Count != 2 || msg.GroupedBy != "message" {
		t.Fatalf("message issue: %+v", msg)
	}
	fp := byTitle(issues, "connection refused")
	if fp == nil {
		fp = byTitle(issues, "gateway timeout")
	}
	if fp == nil || fp.Count != 2 || fp.GroupedBy != "fingerprint" {
		t.Fatalf("fingerprint issue: %+v", fp)
	}

	d := e.show("shop", order.ID, 5)
	if len(d.Events) != 4 {
		t.Fatalf("events of the order issue: got %d, want 4", len(d.Events))
	}
	ev := d.Events[0]
	if ev.SDK == "" || ev.Source != "sdk" {
		t.Errorf("sdk %q source %q", ev.SDK, ev.Source)
	}
	if len(ev.Breadcrumbs) == 0 || ev.Breadcrumbs[0].Message != "user logged in" {
		t.Errorf("breadcrumbs: %+v", ev.Breadcrumbs)
	}
	if n := len(ev.Exceptions); n == 0 || len(ev.Exceptions[n-1].Frames) == 0 {
		t.Fatalf("no stack trace: %+v", ev.Exceptions)
	}
	ex := ev.Exceptions[len(ev.Exceptions)-1]
	top := ex.Frames[len(ex.Frames)-1]
	// sentry-go (v0.50) sends no source context; @sentry/node does.
	// The stack is where CaptureException ran (a plain error has none).
	if top.Function != "TestSentryGo" || top.Lineno == 0 || top.AbsPath == "" {
		t.Errorf("innermost frame: got %+v, want TestSentryGo with file and line", top)
	}
	if ev.User == nil || ev.User.ID == "" {
		t.Errorf("user: %+v", ev.User)
	}
}
