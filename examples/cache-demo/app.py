"""cache-demo: what pier's gateway cache does with an app's responses.

/comments/count  counts its own hits and sends no Cache-Control; the
                 manifest caches it for 5 minutes anyway.
/posts/<n>       Cache-Control: max-age=600, tagged post-<n> and posts.
/live            says max-age=600, but the manifest never caches it.
/write/<n>       POST: "changes" post n and purges its tag through the
                 engine API with the app's own token.
"""
import itertools
import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counter = itertools.count(1)


def purge(tags):
    req = urllib.request.Request(
        os.environ["PIER_API"] + "/v1/apps/" + os.environ["PIER_APP"] + "/cache/purge",
        data=json.dumps({"tags": tags}).encode(),
        headers={"Authorization": "Bearer " + os.environ["PIER_TOKEN"], "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["purged"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, body, headers=None, status=200):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        n = next(counter)
        if self.path == "/healthz":
            self.send("ok")
        elif self.path == "/comments/count":
            self.send("count %d" % n)
        elif self.path.startswith("/posts/"):
            post = self.path.rsplit("/", 1)[1]
            self.send("post %s render %d" % (post, n),
                      {"Cache-Control": "max-age=600", "Cache-Tag": "posts, post-" + post})
        elif self.path == "/live":
            self.send("live %d" % n, {"Cache-Control": "max-age=600"})
        else:
            self.send("not found", status=404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path.startswith("/write/"):
            post = self.path.rsplit("/", 1)[1]
            self.send("purged %d" % purge(["post-" + post]))
        else:
            self.send("not found", status=404)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
