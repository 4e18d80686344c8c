"""Every connection object appends itself to a class attribute "for
debugging", so no connection is ever freed."""
# expect-kind: python

import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))


class Connection:
    all_connections = []

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self.buffer = bytearray(256)  # LEAK
        Connection.all_connections.append(self)

    def send(self, data):
        self.buffer[: len(data)] = data


deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    conn = Connection("db.local", 5432 + n % 10)
    conn.send(b"SELECT 1")
    noise = [str(i) for i in range(40)]  # churn
    n += 1
