// Package api is the engine's HTTP JSON API: the server the engine mounts on
// --api and the Go client every CLI command uses. The wire types live here so
// both sides agree on them; see docs/internals.md for the routes.
package api

import "time"

// App is an app's desired state as the engine holds it.
type App struct {
	Name      string            `json:"name"`
	Release   int               `json:"release"`           // current release number, 0 before the first deploy
	Scale     map[string]int    `json:"scale"`             // process type -> instances
	Domains   []string          `json:"domains,omitempty"` // from the manifest
	URLs      []string          `json:"urls,omitempty"`    // where the gateway serves it
	Env       map[string]string `json:"env,omitempty"`     // config vars set with `pier env` (never in listings)
	Created   time.Time         `json:"created"`
	Updated   time.Time         `json:"updated"`
	Instances []Instance        `json:"instances,omitempty"`
	Status    string            `json:"status,omitempty"` // "running", "starting", "crashed", "asleep", "new"
	// Canary is a release on trial beside Release, serving CanaryShare
	// percent of new clients; 0 = none.
	Canary      int     `json:"canary,omitempty"`
	CanaryShare float64 `json:"canary_share,omitempty"`
	// Staging names the app's staging copy (pier deploy --to staging), if
	// it has one; StagingOf, on a staging copy, names its production app.
	Staging   string `json:"staging,omitempty"`
	StagingOf string `json:"staging_of,omitempty"`
}

// Release statuses.
const (
	ReleaseBuilding = "building"
	ReleaseFailed   = "failed"
	ReleaseReady    = "ready"   // built, not yet serving
	ReleaseActive   = "active"  // the app's current release
	ReleaseRetired  = "retired" // served before, may be rolled back to
	ReleaseCanary   = "canary"  // serving a share of clients beside the current release
)

// Release is an immutable version of an app: bundle + build + config snapshot.
type Release struct {
	App       string            `json:"app"`
	Number    int               `json:"number"`
	Bundle    string            `json:"bundle"` // sha256 of the bundle in the object store
	Kind      string            `json:"kind"`   // python, node, go, static
	Processes map[string]string `json:"processes,omitempty"`
	Env       map[string]string `json:"env,omitempty"` // config snapshot: manifest env + config vars
	Status    string            `json:"status"`
	Error     string            `json:"error,omitempty"`
	Cause     string            `json:"cause,omitempty"` // "deploy", "env set A", "rollback to v2"
	Created   time.Time         `json:"created"`
}

// Instance is one running (or restarting) process of an app.
type Instance struct {
	ID        string    `json:"id"`
	Release   int       `json:"release"`
	Process   string    `json:"process"`
	Instance  string    `json:"instance"` // "web.1"
	State     string    `json:"state"`    // starting, running, backoff, crash-loop, stopping, stopped, failed
	Ready     bool      `json:"ready"`
	PID       int       `json:"pid,omitempty"`
	Port      int       `json:"port,omitempty"`
	Restarts  int       `json:"restarts"`
	StartedAt time.Time `json:"started_at,omitempty"`
	LastExit  string    `json:"last_exit,omitempty"`
	Limits    string    `json:"limits,omitempty"`
}

// Event types streamed during deploys, rollbacks and config changes.
const (
	EventBuild  = "build"  // a build step started or finished
	EventLog    = "log"    // a build output line
	EventStart  = "start"  // instances of the new release are starting
	EventHealth = "health" // a new instance passed or failed its health check
	EventSwap   = "swap"   // the route now points at the new release
	EventDrain  = "drain"  // waiting for in-flight requests of the old release
	EventStop   = "stop"   // old instances stopped
	EventDone   = "done"   // success; Release is the new current release
	EventError  = "error"  // failure; the old release keeps serving
)

// Event is one line of deploy progress.
type Event struct {
	Time    time.Time `json:"time"`
	App     string    `json:"app"`
	Release int       `json:"release,omitempty"`
	Type    string    `json:"type"`
	Message string    `json:"message,omitempty"`
	Error   string    `json:"error,omitempty"`
	LogTail []string  `json:"log_tail,omitempty"`
}

// LogLine is one line a process wrote.
type LogLine struct {
	Time     time.Time `json:"time"`
	App      string    `json:"app"`
	Release  int       `json:"release,omitempty"`
	Process  string    `json:"process"`
	Instance string    `json:"instance"`
	Stream   string    `json:"stream"` // stdout, stderr, or "pier" for the engine's own notes
	Text     string    `json:"text"`
}

// RunRequest asks for a one-off process with the app's environment.
type RunRequest struct {
	Command []string `json:"command"`
}

// RunOutput is one line of a one-off run's NDJSON answer; the last has Exit set.
type RunOutput struct {
	Stream string `json:"stream,omitempty"`
	Text   string `json:"text,omitempty"`
	Exit   *int   `json:"exit,omitempty"`
	Error  string `json:"error,omitempty"`
}

// EnvChange sets and unsets config vars; it makes a new release.
type EnvChange struct {
	Set   map[string]string `json:"set,omitempty"`
	Unset []string          `json:"unset,omitempty"`
}

// RollbackRequest names the release to return to; 0 means the one before the current.
type RollbackRequest struct {
	Release int `json:"release"`
}

// Error is the body of every failed API answer.
type Error struct {
	Error string `json:"error"`
}

// Health is the unauthenticated liveness answer.
type Health struct {
	OK      bool   `json:"ok"`
	Version string `json:"version"`
}
