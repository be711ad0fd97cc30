package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PurgeBefore drops the messages on subject (wildcards allowed) stored
// before t, and keeps every later one: a retention by age that differs per
// subject (a stream's MaxAge is one age for all of them).
func (st *Stream) PurgeBefore(ctx context.Context, subject string, t time.Time) error {
	// The purge ends at the first message stored at or after t; with none,
	// at the end of the stream as it was before looking, so a message that
	// arrives meanwhile stays.
	si, err := st.st.Info(ctx)
	if err != nil {
		return fmt.Errorf("store: purge %s before %s: %w", subject, t.Format(time.RFC3339), err)
	}
	if si.State.Msgs == 0 || !si.State.FirstTime.Before(t) {
		return nil // nothing in the stream is that old
	}
	upTo := si.State.LastSeq + 1
	cons, err := st.st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &t,
	})
	if err != nil {
		return fmt.Errorf("store: purge %s before %s: %w", subject, t.Format(time.RFC3339), err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("store: purge %s before %s: %w", subject, t.Format(time.RFC3339), err)
	}
	if ci.NumPending > 0 {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			return fmt.Errorf("store: purge %s before %s: find the first message to keep: %w", subject, t.Format(time.RFC3339), err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("store: purge %s before %s: %w", subject, t.Format(time.RFC3339), err)
		}
		upTo = meta.Sequence.Stream
	}
	// A filtered purge walks the stream (seconds on a million messages, the
	// server's API waiting meanwhile): only when the subject has something
	// to drop.
	first, err := st.st.GetMsg(ctx, si.State.FirstSeq, jetstream.WithGetMsgSubject(subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: purge %s before %s: find its first message: %w", subject, t.Format(time.RFC3339), err)
	}
	if first.Sequence >= upTo {
		return nil
	}
	if err := st.st.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(upTo)); err != nil {
		return fmt.Errorf("store: purge %s before %s: %w", subject, t.Format(time.RFC3339), err)
	}
	return nil
}
