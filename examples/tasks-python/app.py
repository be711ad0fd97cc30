"""tasks-python: receives pushed tasks from pier's task queues.

Every POST under /tasks/ is a task: pier sends the body with the headers
X-Pier-Queue, X-Pier-Task-Id, X-Pier-Attempt and X-Pier-ETA, and retries
anything but a 2xx. This app records each delivery; GET /seen returns them
as JSON (with the most deliveries it ever had running at once), so tests and
the README can see what pier did. A body containing "fail" is refused with
500, "slow" takes 300 ms.

Enqueue from the app itself with its own token, e.g. in a request handler:
    POST $PIER_API/v1/apps/$PIER_APP/tasks/email  (Authorization: Bearer $PIER_TOKEN)
"""
import json
import os
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
seen = []          # one dict per delivery
running = 0        # deliveries being handled now
most_running = {}  # path -> the most ever handled at once


def enqueue(queue, body):
    """Enqueue a task on one of this app's queues through pier's API."""
    req = urllib.request.Request(
        f"{os.environ['PIER_API']}/v1/apps/{os.environ['PIER_APP']}/tasks/{queue}",
        data=json.dumps({"body": body}).encode(), method="POST",
        headers={"Authorization": "Bearer " + os.environ["PIER_TOKEN"],
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["id"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle and
    # delayed ACKs hold every answer on a kept-alive connection for 40 ms.
    disable_nagle_algorithm = True

    def do_POST(self):
        global running
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if not self.path.startswith("/tasks/"):
            return self.reply(404, {"error": "not found"})
        with lock:
            running += 1
            most_running[self.path] = max(most_running.get(self.path, 0), running)
        try:
            if "slow" in body:
                time.sleep(0.3)
            with lock:
                seen.append({
                    "path": self.path, "body": body, "time": time.time(),
                    "queue": self.headers.get("X-Pier-Queue"),
                    "id": self.headers.get("X-Pier-Task-Id"),
                    "attempt": int(self.headers.get("X-Pier-Attempt") or 0),
                    "eta": self.headers.get("X-Pier-ETA"),
                })
        finally:
            with lock:
                running -= 1
        if "fail" in body:
            return self.reply(500, {"error": "failing on purpose"})
        self.reply(200, {"ok": True})

    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, {"ok": True})
        if self.path.startswith("/enqueue/"):
            return self.reply(201, {"id": enqueue(self.path[len("/enqueue/"):], "from the app")})
        if self.path == "/seen":
            with lock:
                return self.reply(200, {"seen": seen, "most_running": most_running})
        self.reply(404, {"error": "not found"})

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Handler).serve_forever()
