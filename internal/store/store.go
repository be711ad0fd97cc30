// Package store holds all of pier's state in an embedded NATS server with
// JetStream: key-value buckets for desired state, an object store for
// bundles, and streams for events and logs. Callers get typed handles
// (Bucket, Objects, Stream) and never a NATS connection, so a clustered NATS
// can replace the embedded server without touching them.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors callers can test for with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: changed concurrently")
	ErrExists   = errors.New("store: already exists")
)

// Options configure Open.
type Options struct {
	// Dir holds JetStream's files. Required.
	Dir string
	// Logger receives the server's notable messages. Nil discards them.
	Logger *slog.Logger
	// Listen, when set ("127.0.0.1:4222"), also accepts NATS clients on
	// that address; by default the server has no listening socket.
	Listen string
	// MaxMemory and MaxFile bound JetStream; zero lets the server decide.
	MaxMemory, MaxFile int64
}

// Store is an open embedded NATS server and a connection to it.
type Store struct {
	log *slog.Logger
	ns  *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

// Open starts the embedded server under opts.Dir and connects to it in
// process. Close releases both.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("store: no directory given")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	sopts := &server.Options{
		ServerName:         "pier",
		JetStream:          true,
		StoreDir:           filepath.Clean(opts.Dir),
		JetStreamMaxMemory: opts.MaxMemory,
		JetStreamMaxStore:  opts.MaxFile,
		DontListen:         opts.Listen == "",
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         8 << 20,
	}
	if opts.Listen != "" {
		host, port, err := splitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("store: listen %q: %w", opts.Listen, err)
		}
		sopts.Host, sopts.Port = host, port
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("store: start nats: %w", err)
	}
	ns.SetLoggerV2(natsLogger{log}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("store: nats did not become ready within 30s")
	}
	nc, err := nats.Connect(ns.ClientURL(), nats.InProcessServer(ns), nats.Name("pier-engine"),
		nats.MaxReconnects(-1))
	if err != nil {
		ns.Shutdown()
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		ns.Shutdown()
		return nil, fmt.Errorf("store: jetstream: %w", err)
	}
	s := &Store{log: log, ns: ns, nc: nc, js: js}
	log.Debug("store open", "dir", opts.Dir)
	return s, nil
}

// Close flushes and stops the server. Acknowledged writes are already on
// disk (in the page cache at least) before Close.
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	s.nc.Drain()
	s.nc.Close()
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	return nil
}

// Bucket opens (creating it when missing) a key-value bucket. history is how
// many revisions per key are kept (1 when zero).
func (s *Store) Bucket(ctx context.Context, name string, history int) (*Bucket, error) {
	if history < 1 {
		history = 1
	}
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  name,
		History: uint8(min(history, 64)),
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open bucket %s: %w", name, err)
	}
	return &Bucket{name: name, kv: kv}, nil
}

// Objects opens (creating it when missing) an object store bucket.
func (s *Store) Objects(ctx context.Context, name string) (*Objects, error) {
	obs, err := s.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:  name,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open objects %s: %w", name, err)
	}
	return &Objects{name: name, obs: obs}, nil
}

// StreamConfig describes a stream of messages under Subjects.
type StreamConfig struct {
	Name     string
	Subjects []string
	// MaxBytesPerSubject bounds each subject by dropping its oldest
	// messages; zero means no per-subject bound.
	MaxMsgsPerSubject int64
	MaxBytes          int64
	MaxAge            time.Duration
}

// Stream opens (creating or updating it) a stream.
func (s *Store) Stream(ctx context.Context, cfg StreamConfig) (*Stream, error) {
	sc := jetstream.StreamConfig{
		Name:              cfg.Name,
		Subjects:          cfg.Subjects,
		Storage:           jetstream.FileStorage,
		MaxMsgsPerSubject: cfg.MaxMsgsPerSubject,
		MaxBytes:          cfg.MaxBytes,
		MaxAge:            cfg.MaxAge,
		Discard:           jetstream.DiscardOld,
	}
	if sc.MaxBytes == 0 {
		sc.MaxBytes = -1
	}
	if sc.MaxMsgsPerSubject == 0 {
		sc.MaxMsgsPerSubject = -1
	}
	st, err := s.js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("store: open stream %s: %w", cfg.Name, err)
	}
	return &Stream{name: cfg.Name, st: st, s: s}, nil
}

// Publish sends a fire-and-forget message on a core subject (cache purges,
// config pushes): every node's subscribers get it, nothing is stored.
func (s *Store) Publish(subject string, data []byte) error {
	if err := s.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("store: publish %s: %w", subject, err)
	}
	return nil
}

// Subscribe calls fn for each core message on subject until ctx ends.
func (s *Store) Subscribe(ctx context.Context, subject string, fn func(data []byte)) error {
	sub, err := s.nc.Subscribe(subject, func(m *nats.Msg) { fn(m.Data) })
	if err != nil {
		return fmt.Errorf("store: subscribe %s: %w", subject, err)
	}
	go func() {
		<-ctx.Done()
		sub.Unsubscribe()
	}()
	return nil
}

type natsLogger struct{ l *slog.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any)  {}
func (n natsLogger) Tracef(format string, v ...any)  {}
