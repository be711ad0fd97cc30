// Sends a fixed set of errors to $SENTRY_DSN with the real @sentry/node,
// for pier's compatibility tests (internal/errortrack, test/e2e). Exits 0
// once everything is flushed.
'use strict';
const Sentry = require('@sentry/node');

Sentry.init({
  dsn: process.env.SENTRY_DSN,
  release: process.env.SENTRY_RELEASE || 'web@2.0.0',
  environment: 'production',
  tracesSampleRate: 0,
});

function loadCart(id) {
  // The value differs per call, the stack does not: one issue.
  throw new TypeError(`cart ${id} has no items`);
}

function checkout(id) {
  try {
    loadCart(id);
  } catch (err) {
    Sentry.captureException(err);
  }
}

async function main() {
  Sentry.setTag('shard', 'b');
  Sentry.setUser({ id: 'u-1', email: 'grace@example.com' });
  Sentry.addBreadcrumb({ category: 'cart', message: 'opened cart', level: 'info' });
  for (const id of [1, 2, 3, 4]) {
    if (id === 4) Sentry.setUser({ id: 'u-2' });
    checkout(id); // one call site: one stack
  }
  Sentry.captureMessage('queue depth 120 over limit');
  Sentry.captureMessage('queue depth 7 over limit');
  Sentry.withScope((scope) => {
    scope.setFingerprint(['billing-down']);
    Sentry.captureException(new Error('billing API 503'));
    Sentry.captureMessage('billing slow');
  });
  // A big event: @sentry/node gzips bodies over 32 KB.
  Sentry.withScope((scope) => {
    scope.setExtra('blob', 'x'.repeat(40 * 1024));
    Sentry.captureMessage('large payload');
  });
  const ok = await Sentry.flush(10000);
  if (!ok) {
    console.error('flush timed out');
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
