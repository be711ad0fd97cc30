package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is a key-value bucket. Keys are dot-separated tokens of
// [A-Za-z0-9_=-]; values are opaque bytes.
type Bucket struct {
	name string
	kv   jetstream.KeyValue
}

// Entry is one key's value at a revision.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
	Deleted  bool // only in Watch: the key was deleted or purged
}

// Get returns the current value of key or ErrNotFound.
func (b *Bucket) Get(ctx context.Context, key string) (Entry, error) {
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Entry{}, fmt.Errorf("%s %q: %w", b.name, key, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("store: get %s %q: %w", b.name, key, err)
	}
	return Entry{Key: key, Value: e.Value(), Revision: e.Revision()}, nil
}

// Put writes value unconditionally and returns the new revision.
func (b *Bucket) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := b.kv.Put(ctx, key, value)
	if err != nil {
		return 0, fmt.Errorf("store: put %s %q: %w", b.name, key, err)
	}
	return rev, nil
}

// Create writes value only if key does not exist (ErrExists otherwise).
func (b *Bucket) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := b.kv.Create(ctx, key, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("%s %q: %w", b.name, key, ErrExists)
	}
	if err != nil {
		return 0, fmt.Errorf("store: create %s %q: %w", b.name, key, err)
	}
	return rev, nil
}

// Update writes value only if key is still at revision rev (ErrConflict
// otherwise).
func (b *Bucket) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	nrev, err := b.kv.Update(ctx, key, value, rev)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return 0, fmt.Errorf("%s %q: %w", b.name, key, ErrConflict)
		}
		return 0, fmt.Errorf("store: update %s %q: %w", b.name, key, err)
	}
	return nrev, nil
}

// Delete removes key and its history. Deleting a missing key is not an error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := b.kv.Purge(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("store: delete %s %q: %w", b.name, key, err)
	}
	return nil
}

// Keys lists the keys matching filter (NATS wildcards: "blog.*", ">"; empty
// means all).
func (b *Bucket) Keys(ctx context.Context, filter string) ([]string, error) {
	if filter == "" {
		filter = ">"
	}
	lister, err := b.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("store: keys %s: %w", b.name, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// Watch calls fn with every current entry matching filter, then once with a
// zero Entry (Key == "") to mark that the initial values are done, then with
// each change, until ctx ends. It returns after the watch is set up.
func (b *Bucket) Watch(ctx context.Context, filter string, fn func(Entry)) error {
	if filter == "" {
		filter = ">"
	}
	w, err := b.kv.Watch(ctx, filter)
	if err != nil {
		return fmt.Errorf("store: watch %s: %w", b.name, err)
	}
	go func() {
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					fn(Entry{})
					continue
				}
				fn(Entry{
					Key:      e.Key(),
					Value:    e.Value(),
					Revision: e.Revision(),
					Deleted:  e.Operation() != jetstream.KeyValuePut,
				})
			}
		}
	}()
	return nil
}

// GetJSON reads key into v and returns its revision.
func GetJSON(ctx context.Context, b *Bucket, key string, v any) (uint64, error) {
	e, err := b.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(e.Value, v); err != nil {
		return 0, fmt.Errorf("store: decode %s %q: %w", b.name, key, err)
	}
	return e.Revision, nil
}

// PutJSON writes v as JSON unconditionally.
func PutJSON(ctx context.Context, b *Bucket, key string, v any) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("store: encode %s %q: %w", b.name, key, err)
	}
	return b.Put(ctx, key, data)
}

// Modify reads key into a T (zero, with exists false, when missing), lets fn
// change it, and writes it back with compare-and-set, retrying from the read
// when another writer got there first. fn may run more than once.
func Modify[T any](ctx context.Context, b *Bucket, key string, fn func(v *T, exists bool) error) (T, error) {
	for attempt := 0; ; attempt++ {
		var v T
		rev, err := GetJSON(ctx, b, key, &v)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return v, err
		}
		if err := fn(&v, exists); err != nil {
			return v, err
		}
		data, err := json.Marshal(v)
		if err != nil {
			return v, fmt.Errorf("store: encode %s %q: %w", b.name, key, err)
		}
		if exists {
			_, err = b.Update(ctx, key, data, rev)
		} else {
			_, err = b.Create(ctx, key, data)
		}
		if err == nil {
			return v, nil
		}
		if (errors.Is(err, ErrConflict) || errors.Is(err, ErrExists)) && attempt < 100 {
			continue
		}
		return v, err
	}
}

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("bad port %q", port)
	}
	return strings.Trim(host, "[]"), p, nil
}
