"""A threaded HTTP server on loopback and a client hammering it: sockets,
threads, the http and json modules, and the interpreter's type attribute
cache (every getattr of a fresh method-name string) in normal use."""

import http.server
import json
import os
import socketserver
import threading
import time
import urllib.request

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "items": list(range(20))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
port = server.server_address[1]
threading.Thread(target=server.serve_forever, daemon=True).start()
deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/item/{n}") as reply:
        json.loads(reply.read())
    n += 1
server.shutdown()
server.server_close()
