package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// WorkQueueConfig describes a work-queue stream. Its owner keeps its own
// index of the messages and removes them by sequence or by purge; no
// consumer reads it (DeleteConsumer removes those older engines made).
type WorkQueueConfig struct {
	Name     string
	Subjects []string
	// Dedup is how long a message id (Put's MsgID) is remembered to refuse
	// a second message with the same id; zero leaves the server's default
	// (2 minutes).
	Dedup time.Duration
}

// WorkQueue is a work-queue stream with message schedules and per-message
// TTL enabled. Callers get typed operations, never the JetStream handle.
type WorkQueue struct {
	name  string
	st    jetstream.Stream
	s     *Store
	acked atomic.Uint64 // see Acked
}

// Acked returns the highest sequence a put through q was acknowledged
// with. The stream assigns sequences in order, so every message up to it
// was stored before that acknowledgement: a search that starts after the
// call and finds nothing has nothing to find up to there.
func (q *WorkQueue) Acked() uint64 { return q.acked.Load() }

// ack records seq as acknowledged (see Acked).
func (q *WorkQueue) ack(seq uint64) {
	for {
		old := q.acked.Load()
		if seq <= old || q.acked.CompareAndSwap(old, seq) {
			return
		}
	}
}

// WorkQueue opens (creating or updating it) a work-queue stream.
func (s *Store) WorkQueue(ctx context.Context, cfg WorkQueueConfig) (*WorkQueue, error) {
	st, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              cfg.Name,
		Subjects:          cfg.Subjects,
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.WorkQueuePolicy,
		Discard:           jetstream.DiscardOld,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
		Duplicates:        cfg.Dedup,
		AllowMsgSchedules: true,
		AllowMsgTTL:       true,
		AllowDirect:       true,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open work queue %s: %w", cfg.Name, err)
	}
	return &WorkQueue{name: cfg.Name, st: st, s: s}, nil
}

// ErrDuplicate is returned by Put when a message with the same MsgID was
// stored within the dedup window; PutResult.Seq names that message.
var ErrDuplicate = errors.New("store: duplicate message id")

// PutOptions are the optional parts of a Put.
type PutOptions struct {
	// MsgID deduplicates: a second Put with the same id inside the dedup
	// window stores nothing and returns ErrDuplicate.
	MsgID string
	// At makes the message a one-shot schedule: it is stored on the
	// subject given to Put and, at At (whole seconds, rounded up), the
	// server publishes a copy (same data and headers) on Target and
	// removes the schedule. Each pending schedule needs its own subject.
	At time.Time
	// Cron makes the message a repeating schedule: a 6-field cron
	// expression (with seconds), "@every 1m", or "@hourly" and friends.
	// The server publishes a copy on Target at each tick. A later Put on
	// the same subject replaces the schedule.
	Cron string
	// Target is where a schedule's copies go; required with At or Cron.
	Target string
	// TTL, when set, makes the server drop the message after it.
	TTL time.Duration
}

// Put stores a message and waits for the server's acknowledgement; the
// message is durable when Put returns without error.
func (q *WorkQueue) Put(ctx context.Context, subject string, data []byte, header map[string]string, o PutOptions) (uint64, error) {
	msg := nats.NewMsg(subject)
	msg.Data = data
	for k, v := range header {
		msg.Header.Set(k, v)
	}
	var opts []jetstream.PublishOpt
	if o.MsgID != "" {
		opts = append(opts, jetstream.WithMsgID(o.MsgID))
	}
	if !o.At.IsZero() || o.Cron != "" {
		if o.Target == "" {
			return 0, fmt.Errorf("store: put %s: a schedule needs a target subject", subject)
		}
		if o.Cron != "" {
			opts = append(opts, jetstream.WithScheduleCron(o.Cron))
		} else {
			at := o.At
			if at.Truncate(time.Second) != at {
				at = at.Truncate(time.Second).Add(time.Second)
			}
			opts = append(opts, jetstream.WithScheduleAt(at))
		}
		opts = append(opts, jetstream.WithScheduleTarget(o.Target))
	}
	if o.TTL > 0 {
		opts = append(opts, jetstream.WithMsgTTL(o.TTL))
	}
	ack, err := q.s.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		return 0, fmt.Errorf("store: put %s: %w", subject, err)
	}
	q.ack(ack.Sequence)
	if ack.Duplicate {
		return ack.Sequence, ErrDuplicate
	}
	return ack.Sequence, nil
}

// Get returns the message stored at seq, or ErrNotFound.
func (q *WorkQueue) Get(ctx context.Context, seq uint64) (Message, error) {
	raw, err := q.st.GetMsg(ctx, seq)
	return rawMessage(raw, err)
}

// Last returns the newest message on subject (wildcards allowed), or
// ErrNotFound.
func (q *WorkQueue) Last(ctx context.Context, subject string) (Message, error) {
	raw, err := q.st.GetLastMsgForSubject(ctx, subject)
	return rawMessage(raw, err)
}

// Next returns the first message at or after seq on subject (wildcards
// allowed), or ErrNotFound.
func (q *WorkQueue) Next(ctx context.Context, subject string, seq uint64) (Message, error) {
	raw, err := q.st.GetMsg(ctx, max(seq, 1), jetstream.WithGetMsgSubject(subject))
	return rawMessage(raw, err)
}

func rawMessage(raw *jetstream.RawStreamMsg, err error) (Message, error) {
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return Message{}, ErrNotFound
		}
		return Message{}, fmt.Errorf("store: get message: %w", err)
	}
	m := Message{Subject: raw.Subject, Data: raw.Data, Time: raw.Time, Seq: raw.Sequence}
	if len(raw.Header) > 0 {
		m.Header = make(map[string]string, len(raw.Header))
		for k := range raw.Header {
			m.Header[k] = raw.Header.Get(k)
		}
	}
	return m, nil
}

// Delete removes the message at seq; ErrNotFound when there is none.
func (q *WorkQueue) Delete(ctx context.Context, seq uint64) error {
	if err := q.st.DeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
			return ErrNotFound
		}
		return fmt.Errorf("store: delete message %d: %w", seq, err)
	}
	return nil
}

// Purge removes every message on subject (wildcards allowed).
func (q *WorkQueue) Purge(ctx context.Context, subject string) error {
	if err := q.st.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return fmt.Errorf("store: purge %s: %w", subject, err)
	}
	return nil
}

// Count returns how many messages are stored on subject (wildcards
// allowed). It costs a walk of the matching subjects: for stats, not for
// hot paths.
func (q *WorkQueue) Count(ctx context.Context, subject string) (int, error) {
	info, err := q.st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("store: count %s: %w", subject, err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n, nil
}

// DeleteConsumer removes a durable consumer (engines before the tasks
// index read the queue through consumers); its messages stay in the stream.
func (q *WorkQueue) DeleteConsumer(ctx context.Context, name string) error {
	err := q.st.DeleteConsumer(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("store: delete consumer %s: %w", name, err)
	}
	return nil
}

// PutMsg is one message of PutAll.
type PutMsg struct {
	Subject string
	Data    []byte
	Header  map[string]string
}

// PutAll stores msgs without waiting for each acknowledgement in turn,
// then waits for all of them: seqs[i] gets the sequence of msgs[i], or
// stays 0 when that message was not stored (the first such error is
// returned). A message is durable once its sequence is set.
//
// The acknowledgements come to an inbox of the call's own, each to a
// subject ending in its message's index: PublishMsgAsync's future, timer
// and pending-map entry per message, and its encoding/json decoding of
// each acknowledgement, took a fifth of the CPU a stored message cost.
func (q *WorkQueue) PutAll(ctx context.Context, msgs []PutMsg, seqs []uint64) error {
	if len(msgs) == 0 {
		return nil
	}
	clear(seqs[:len(msgs)])
	inbox := nats.NewInbox()
	// One slot per message: a full channel would drop acknowledgements.
	acks := make(chan *nats.Msg, len(msgs))
	sub, err := q.s.nc.ChanSubscribe(inbox+".*", acks)
	if err != nil {
		return fmt.Errorf("store: put %d messages: subscribe for acknowledgements: %w", len(msgs), err)
	}
	defer sub.Unsubscribe()

	var first error
	sent := 0
	for i, m := range msgs {
		msg := &nats.Msg{Subject: m.Subject, Reply: inbox + "." + strconv.Itoa(i), Data: m.Data}
		if len(m.Header) > 0 {
			msg.Header = make(nats.Header, len(m.Header))
			for k, v := range m.Header {
				msg.Header.Set(k, v)
			}
		}
		if err := q.s.nc.PublishMsg(msg); err != nil {
			// The connection is closed or its buffer full: the rest would
			// fail the same way.
			first = fmt.Errorf("store: put %s: %w", m.Subject, err)
			break
		}
		sent++
	}
	for left := sent; left > 0; {
		select {
		case a := <-acks:
			// The server answers each message once, on the reply
			// subject it came with.
			i, err := strconv.Atoi(a.Subject[len(inbox)+1:])
			if err != nil || i < 0 || i >= sent {
				continue
			}
			left--
			seq, err := ackSeq(a)
			if err != nil {
				if first == nil {
					first = fmt.Errorf("store: put %s: %w", msgs[i].Subject, err)
				}
				continue
			}
			seqs[i] = seq
			q.ack(seq)
		case <-ctx.Done():
			return fmt.Errorf("store: put %d messages: %w", len(msgs), ctx.Err())
		}
	}
	return first
}

// ackSeq reads the stream sequence from a publish acknowledgement
// ({"stream":"TASKS","seq":12}, maybe with "domain" and "duplicate"
// fields), or the error it carries instead.
func ackSeq(m *nats.Msg) (uint64, error) {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return 0, nats.ErrNoResponders // no stream takes the subject
	}
	d := m.Data
	if seq, ok := plainAck(d); ok {
		return seq, nil
	}
	var ack struct {
		Seq   uint64              `json:"seq"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(d, &ack); err != nil {
		return 0, fmt.Errorf("unreadable acknowledgement %q: %w", d, err)
	}
	if ack.Error != nil {
		return 0, fmt.Errorf("%s (status %d, error code %d)", ack.Error.Description, ack.Error.Code, ack.Error.ErrorCode)
	}
	if ack.Seq == 0 {
		return 0, fmt.Errorf("acknowledgement %q has no sequence", d)
	}
	return ack.Seq, nil
}

// plainAck reads the usual acknowledgement, exactly
// {"stream":"<name>","seq":<sequence>} as the server writes it, without
// encoding/json; ok is false for any other text.
func plainAck(d []byte) (seq uint64, ok bool) {
	d, ok = bytes.CutPrefix(d, []byte(`{"stream":"`))
	if !ok {
		return 0, false
	}
	i := 0
	for i < len(d) && (d[i] == '_' || d[i] == '-' || '0' <= d[i] && d[i] <= '9' || 'a' <= d[i] && d[i] <= 'z' || 'A' <= d[i] && d[i] <= 'Z') {
		i++
	}
	if d, ok = bytes.CutPrefix(d[i:], []byte(`","seq":`)); !ok || len(d) < 2 || len(d) > 20 || d[0] == '0' || d[len(d)-1] != '}' {
		return 0, false
	}
	for _, c := range d[:len(d)-1] { // at most 19 digits: no overflow
		if c < '0' || c > '9' {
			return 0, false
		}
		seq = seq*10 + uint64(c-'0')
	}
	return seq, seq > 0
}

// PurgeBelow removes every message on subject (wildcards allowed) whose
// sequence is below seq, in one request: for removing many finished
// messages at once.
func (q *WorkQueue) PurgeBelow(ctx context.Context, subject string, seq uint64) error {
	if err := q.st.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(seq)); err != nil {
		return fmt.Errorf("store: purge %s below %d: %w", subject, seq, err)
	}
	return nil
}
