"""hello-python: the smallest pier app, Python standard library only.

It serves on $PORT, shows its release and the GREETING config var, answers
/healthz for pier's health check, and on SIGTERM finishes the requests in
flight before exiting 0, so a deploy never cuts a response short.
"""
import html
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

NAME = "hello-python"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/":
            greeting = os.environ.get("GREETING", "hello")
            release = os.environ.get("PIER_RELEASE", "dev")
            page = (f"<!doctype html><title>{NAME}</title>"
                    f"<h1>{html.escape(greeting)} from {NAME}</h1>"
                    f"<p>release {html.escape(release)}</p>\n")
            self.reply(200, page, "text/html; charset=utf-8")
        elif url.path == "/healthz":
            self.reply(200, "ok\n")
        elif url.path == "/slow":
            ms = int(parse_qs(url.query).get("ms", ["1000"])[0])
            time.sleep(ms / 1000)
            self.reply(200, f"slept {ms} ms\n")
        elif url.path == "/crash":
            print(f"{NAME}: /crash requested, exiting with status 1", flush=True)
            os._exit(1)
        else:
            self.reply(404, "not found\n")

    def reply(self, status, body, ctype="text/plain; charset=utf-8"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        # One line per request, on stdout, where pier collects it.
        print(f"{self.command} {self.path} {fmt % args}", flush=True)


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for requests in flight


def main():
    port = int(os.environ.get("PORT", "8000"))
    server = Server(("", port), Handler)

    def stop(signum, frame):
        # shutdown() waits for serve_forever() to return: call it from
        # another thread than the one serving.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"{NAME} listening on :{port}", flush=True)
    server.serve_forever()
    server.server_close()
    print(f"{NAME} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
