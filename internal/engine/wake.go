package engine

import (
	"context"

	"pier/internal/deploy"
	"pier/internal/gateway"
)

// waker starts sleeping apps (manifest web min 0) for the gateway through
// the deploy manager, which is made after the gateway: it reads the
// manager only once requests flow.
type waker struct{ m **deploy.Manager }

var _ gateway.Waker = waker{}

func (w waker) Wake(ctx context.Context, app string) error { return (*w.m).Wake(ctx, app) }
