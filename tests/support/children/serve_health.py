"""serve_health.py PORT [SICK_FILE]: answer GET /health (503 while SICK_FILE exists) and /metrics."""

import http.server
import os
import sys

port = int(sys.argv[1])
sick = sys.argv[2] if len(sys.argv) > 2 else None
hits = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        global hits
        hits += 1
        if self.path == "/health":
            down = sick is not None and os.path.exists(sick)
            body = b'{"status": "down"}' if down else b'{"status": "ok"}'
            self.send_response(503 if down else 200)
        elif self.path == "/metrics":
            body = f"# TYPE test_hits_total counter\ntest_hits_total{{kind=\"get\"}} {hits}\n".encode()
            self.send_response(200)
        else:
            body = b"{}"
            self.send_response(404)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", port), Handler)
print(f"serving on {port} pid {os.getpid()}", flush=True)
server.serve_forever()
