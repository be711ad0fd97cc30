"""A web app that crashes on /crash, with no Sentry SDK: pier reads the
traceback the interpreter prints and files it as an issue (pier errors)."""
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PaymentError(Exception):
    pass


def charge(order):
    raise PaymentError(f"card declined for order {order}")


crashed = []


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            crashed.append(True)
            self.reply(500, "crashing\n")
            threading.Thread(target=self.server.shutdown).start()
            return
        dsn = "set" if os.environ.get("SENTRY_DSN") else "unset"
        self.reply(200, f"crashy-python {os.environ.get('PIER_RELEASE')} SENTRY_DSN {dsn}\n")

    def reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.serve_forever()
if crashed:
    charge(42)  # uncaught: Python prints the traceback and exits 1
