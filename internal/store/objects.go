package store

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
)

// Objects is a bucket of named blobs of any size, stored in chunks.
type Objects struct {
	name string
	obs  jetstream.ObjectStore
}

// Put stores r under name, replacing what was there.
func (o *Objects) Put(ctx context.Context, name string, r io.Reader) error {
	if _, err := o.obs.Put(ctx, jetstream.ObjectMeta{Name: name}, r); err != nil {
		return fmt.Errorf("store: put object %s/%s: %w", o.name, name, err)
	}
	return nil
}

// Has reports whether name is stored.
func (o *Objects) Has(ctx context.Context, name string) (bool, error) {
	_, err := o.obs.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: stat object %s/%s: %w", o.name, name, err)
	}
	return true, nil
}

// Get opens the object for reading; the caller closes it. A digest mismatch
// surfaces as a read error.
func (o *Objects) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	r, err := o.obs.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("object %s/%s: %w", o.name, name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get object %s/%s: %w", o.name, name, err)
	}
	return r, nil
}

// Delete removes name; a missing object is not an error.
func (o *Objects) Delete(ctx context.Context, name string) error {
	err := o.obs.Delete(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("store: delete object %s/%s: %w", o.name, name, err)
	}
	return nil
}
