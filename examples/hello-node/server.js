// hello-node: the smallest pier app in Node. It serves on $PORT, shows its
// release and the GREETING config var (escaped with the escape-html package),
// answers /healthz for pier's health check, and on SIGTERM finishes the
// requests in flight before exiting 0.
'use strict';
const http = require('http');
const escapeHtml = require('escape-html');

const NAME = 'hello-node';
const port = Number(process.env.PORT || 8000);

const server = http.createServer((req, res) => {
  const start = Date.now();
  res.on('finish', () => {
    // One line per request, on stdout, where pier collects it.
    console.log(`${req.method} ${req.url} ${res.statusCode} ${Date.now() - start}ms`);
  });
  const url = new URL(req.url, 'http://localhost');
  const reply = (status, body, type = 'text/plain; charset=utf-8') => {
    const headers = { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) };
    if (stopping) headers.Connection = 'close'; // do not keep the connection for another request
    res.writeHead(status, headers);
    res.end(body);
  };
  switch (url.pathname) {
    case '/': {
      const greeting = escapeHtml(process.env.GREETING || 'hello');
      const release = escapeHtml(process.env.PIER_RELEASE || 'dev');
      reply(200, `<!doctype html><title>${NAME}</title><h1>${greeting} from ${NAME}</h1><p>release ${release}</p>\n`,
        'text/html; charset=utf-8');
      break;
    }
    case '/healthz':
      reply(200, 'ok\n');
      break;
    case '/slow': {
      const ms = Number(url.searchParams.get('ms') || 1000);
      setTimeout(() => reply(200, `slept ${ms} ms\n`), ms);
      break;
    }
    case '/crash':
      console.log(`${NAME}: /crash requested, exiting with status 1`);
      process.exit(1);
    default:
      reply(404, 'not found\n');
  }
});

let stopping = false;
function stop() {
  stopping = true;
  // Stop accepting; close() calls back once the requests in flight are done.
  server.close(() => {
    console.log(`${NAME} stopped`);
    process.exit(0);
  });
  server.closeIdleConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(port, () => console.log(`${NAME} listening on :${port}`));
