package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConsumeOptions configure Stream.Consume.
type ConsumeOptions struct {
	// Durable names the consumer; its position survives restarts. Required.
	Durable string
	// Filter selects the subjects delivered ("" = all of the stream).
	Filter string
	// Batch is the most messages handed to fn at once (0 = 256).
	Batch int
	// AckWait is how long a delivered batch may stay unacknowledged before
	// it is delivered again (0 = 30s).
	AckWait time.Duration
}

// Consume hands the stream's messages to fn in batches, in order, from a
// durable consumer: a batch is acknowledged when fn returns nil and
// delivered again (after AckWait) when it returns an error, so fn must be
// idempotent. Consume returns once the consumer exists; delivery goes on in
// a goroutine until ctx ends. Several nodes consuming the same Durable share
// the work.
func (st *Stream) Consume(ctx context.Context, opts ConsumeOptions, fn func(ctx context.Context, batch []Message) error) error {
	if opts.Durable == "" {
		return errors.New("store: consume: no durable name")
	}
	if opts.Batch <= 0 {
		opts.Batch = 256
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 30 * time.Second
	}
	cons, err := st.st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       opts.Durable,
		FilterSubject: opts.Filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       opts.AckWait,
		MaxAckPending: opts.Batch * 4,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("store: consumer %s on %s: %w", opts.Durable, st.name, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(opts.Batch * 2))
	if err != nil {
		return fmt.Errorf("store: consume %s: %w", st.name, err)
	}
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	go func() {
		defer it.Stop()
		for ctx.Err() == nil {
			first, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				st.s.log.Warn("consume", "stream", st.name, "consumer", opts.Durable, "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			msgs := []jetstream.Msg{first}
			for len(msgs) < opts.Batch {
				m, err := it.Next(jetstream.NextMaxWait(time.Millisecond))
				if err != nil {
					if !errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
						st.s.log.Debug("consume", "stream", st.name, "err", err)
					}
					break
				}
				msgs = append(msgs, m)
			}
			batch := make([]Message, len(msgs))
			for i, m := range msgs {
				batch[i] = toMessage(m)
			}
			if err := fn(ctx, batch); err != nil {
				if ctx.Err() == nil {
					st.s.log.Warn("consume: batch not processed, will be redelivered", "stream", st.name, "consumer", opts.Durable, "err", err)
				}
				for _, m := range msgs {
					m.Nak()
				}
				continue
			}
			for _, m := range msgs {
				m.Ack()
			}
		}
	}()
	return nil
}

// Last returns the newest message stored on subject, or ErrNotFound.
func (st *Stream) Last(ctx context.Context, subject string) (Message, error) {
	raw, err := st.st.GetLastMsgForSubject(ctx, subject)
	return rawMessage(raw, err)
}

// Count returns how many messages the stream holds on subject (wildcards
// allowed).
func (st *Stream) Count(ctx context.Context, subject string) (uint64, error) {
	info, err := st.st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("store: count %s: %w", subject, err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}
