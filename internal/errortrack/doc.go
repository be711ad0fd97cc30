// Package errortrack is pier's error tracker: it speaks the Sentry
// protocol, so an app's official Sentry SDK works with nothing but the
// SENTRY_DSN pier gives every process, and it files crashes it reads in
// process output (Python tracebacks, Go panics, Node uncaught exceptions)
// for apps with no SDK at all.
//
// # Ingestion (wire: envelope.go, event.go, ingest.go)
//
// Each app is a Sentry project with a numeric id and a random public key,
// made the first time the app's processes get their environment and kept in
// the KV bucket errors_projects. Its DSN points at the gateway's internal
// prefix, which no app can shadow:
//
//	SENTRY_DSN=http://<key>@127.0.0.1:<gateway port>/_pier/errors/<id>
//
// so SDKs post to /_pier/errors/api/<id>/envelope/ (and the legacy
// /store/) on any gateway host. The same endpoints answer on the API
// listener as /api/<id>/envelope/ and /api/<id>/store/. The key comes from
// X-Sentry-Auth (sentry-go), the sentry_key query parameter (@sentry/node),
// Authorization: Sentry ..., or the envelope header's dsn. Bodies may be
// gzip, deflate or br; they are capped (Options.MaxBodyBytes, 413 past it,
// before and after decompression). Envelope items with or without
// "length" are read; event items are stored, every other type (transaction,
// session, client_report, attachment, ...) is accepted and dropped.
// Answers follow Sentry: 200 {"id": ...}; 400 with the reason for a bad
// envelope or event; 401 without a key; 403 for a key that is not the
// project's; 404 for an unknown project; 413; 429 with Retry-After and
// X-Sentry-Rate-Limits when the app is over its rate (a token bucket per
// app and node, Options.RatePerSecond/Burst or the app's Config; scope
// "project") or when the node takes more than its cap from all apps
// together (Options.NodeRatePerSecond/NodeBurst, pier up
// --errors-node-rate; scope "organization"; the app's tokens are given
// back). Every refusal also carries X-Sentry-Error.
//
// # Storage (storage.go)
//
// An accepted event is normalised, grouped (group.go) and appended to the
// JetStream stream ERRORS on subject errors.<app>.<issue> before the SDK
// gets its 200: acknowledged events survive kill -9. The stream keeps the
// latest Options.EventsPerIssue events of each issue in full,
// Options.MaxBytes in all. Issues (counts, users,
// first/last seen and release, environments, tag values, status) live in
// the KV bucket errors_issues under <app>.<issue>; a durable consumer of the
// stream (the grouper) counts events into them in batches, one
// compare-and-set per issue per batch, skipping events it already counted
// (by stream sequence), so a crash between the append and the count only
// delays the count.
//
// An index (index.go) keeps each app's issues ordered by last seen, with
// their status and count, in memory: a watch of errors_issues fills it at
// start and follows every write, whichever node made it. Listing a page
// (?limit, ?cursor: the last issue's last-seen time and id), counting
// (/errors/counts) and retention read it, then only the issues they need,
// never every key of the bucket.
//
// Retention (Sweep, every Options.SweepEvery) is per app, by age and by
// count: its events stored longer ago than its retention (Config
// RetentionDays, else Options.MaxAge, pier up --errors-retention) are
// purged from the stream while their issues keep their counts; issues last
// seen longer ago than that, and those past its issue cap (Config
// MaxIssues, else Options.MaxIssues) least recently seen first, go with
// their events.
//
// # Grouping (group.go, issue.go)
//
// By the SDK's fingerprint ("{{ default }}" allowed), else the exception
// chain's types and in-app frames (module or file with the release
// directory stripped, and function; never line numbers), else the message
// with numbers, hex ids and UUIDs blanked. An issue's id is a hash of the
// app and that key. Issues are unresolved, resolved or ignored; a resolved
// issue that gets an event from a release newer than the one it was
// resolved in (pier's vN, dotted versions, or any other different name)
// becomes unresolved and is flagged a regression. Events from apps that set
// no release get the app's current pier release ("v7"): pier cannot put
// SENTRY_RELEASE into the environment, which is made before the release is.
//
// # Crashes (crash.go)
//
// Output runs a small state machine per instance and stream over every line
// an app writes; a report ends at a line that cannot belong to it, at Node's
// "Node.js vX" trailer, or after a second without output. It becomes an
// event with the instance's release, process and instance tags, level
// fatal (Go, Node) or error (Python, whose tracebacks are also printed for
// handled errors), and the raw text.
//
// # Alerts (alerts.go) and the API (api.go)
//
// A new issue or a regression POSTs an Alert as JSON to the app's webhook,
// at most Config.AlertsPerHour per app. The API for the CLI and the
// dashboard is mounted by Routes under /v1/apps/{app}/errors.
//
// A Tracker follows the engine's service lifecycle: New(Options), then
// Start(ctx); everything stops when ctx ends.
package errortrack
