package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// OpenStream opens an existing stream by name without creating or
// changing it (ErrNotFound when there is none).
func (s *Store) OpenStream(ctx context.Context, name string) (*Stream, error) {
	st, err := s.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open stream %s: %w", name, err)
	}
	return &Stream{name: name, st: st, s: s}, nil
}

// StreamNames lists the streams whose name starts with prefix.
func (s *Store) StreamNames(ctx context.Context, prefix string) ([]string, error) {
	lister := s.js.StreamNames(ctx)
	var names []string
	for n := range lister.Name() {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("store: list streams: %w", err)
	}
	return names, nil
}

// DeleteStream deletes a stream and its messages; a missing stream is not
// an error.
func (s *Store) DeleteStream(ctx context.Context, name string) error {
	if err := s.js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("store: delete stream %s: %w", name, err)
	}
	return nil
}

// SetSubjects changes the subjects a stream takes new messages on; the
// stored messages keep theirs. It frees subjects for another stream.
func (st *Stream) SetSubjects(ctx context.Context, subjects []string) error {
	info, err := st.st.Info(ctx)
	if err != nil {
		return fmt.Errorf("store: stream %s: %w", st.name, err)
	}
	cfg := info.Config
	cfg.Subjects = subjects
	if _, err := st.s.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("store: update stream %s: %w", st.name, err)
	}
	return nil
}

// Size returns how many messages and bytes the stream holds.
func (st *Stream) Size(ctx context.Context) (msgs, bytes uint64, err error) {
	info, err := st.st.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("store: stream %s: %w", st.name, err)
	}
	return info.State.Msgs, info.State.Bytes, nil
}

// AppendAll stores messages without waiting for each acknowledgement, then
// waits until all are acknowledged (or ctx ends): for bulk copies.
func (st *Stream) AppendAll(ctx context.Context, msgs []Message) error {
	var futures []jetstream.PubAckFuture
	for _, m := range msgs {
		msg := nats.NewMsg(m.Subject)
		msg.Data = m.Data
		for k, v := range m.Header {
			msg.Header.Set(k, v)
		}
		f, err := st.s.js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("store: append %s: %w", m.Subject, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("store: append %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Each calls fn for every stored message, oldest first, holding none of
// them (Read keeps a backlog to count from the end), and returns after the
// last one, when fn returns an error, or when ctx ends.
func (st *Stream) Each(ctx context.Context, fn func(Message) error) error {
	cons, err := st.st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("store: read %s: %w", st.name, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("store: read %s: %w", st.name, err)
	}
	if info.NumPending == 0 {
		return nil
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("store: read %s: %w", st.name, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("store: read %s: %w", st.name, err)
		}
		if err := fn(toMessage(msg)); err != nil {
			return err
		}
		if meta, err := msg.Metadata(); err != nil || meta.NumPending == 0 {
			return nil
		}
	}
}
