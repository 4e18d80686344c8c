"""A web request handler, without a network: parse, route, respond.

Each request is raw HTTP/1.1 bytes: the request line, headers and query
string are parsed into a small Request object, a regex router picks a
handler, the handler builds a response dict (with per-request objects such
as a session and a list of rows), the body is templated or JSON-encoded,
and the response is serialised back to bytes.
"""

import json
import re
import time
from string import Template
from urllib.parse import parse_qs, unquote, urlsplit

REQUESTS = 27_000

PAGE = Template(
    "<html><head><title>$title</title></head><body><h1>Hello, $user</h1>"
    "<ul>$items</ul><p>page $page of $pages</p></body></html>"
)


class Request:
    __slots__ = ("method", "path", "query", "headers", "body")

    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body


class Session:
    def __init__(self, user, token):
        self.user = user
        self.token = token
        self.flash = []


def parse(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    url = urlsplit(target)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    return Request(method, unquote(url.path), query, headers, body)


def users_show(req, user_id):
    session = Session(req.headers.get("x-user", "anonymous"), req.headers["cookie"])
    rows = [{"id": int(user_id) * 10 + i, "label": f"row {i}"} for i in range(8)]
    items = "".join(f"<li>{r['id']}: {r['label']}</li>" for r in rows)
    page = int(req.query.get("page", "1"))
    body = PAGE.substitute(
        title=f"User {user_id}", user=session.user, items=items, page=page, pages=9
    )
    return {"status": 200, "content_type": "text/html", "body": body}


def api_orders(req, order_id):
    order = {
        "id": int(order_id),
        "lines": [{"sku": f"SKU-{order_id}-{i}", "qty": i + 1} for i in range(5)],
        "total": round(int(order_id) * 3.75, 2),
        "filters": req.query,
    }
    body = json.dumps(order)
    return {"status": 200, "content_type": "application/json", "body": body}


def not_found(req):
    return {"status": 404, "content_type": "text/plain", "body": f"no {req.path}"}


ROUTES = [
    (re.compile(r"^/users/(\d+)$"), users_show),
    (re.compile(r"^/api/orders/(\d+)$"), api_orders),
]
REASONS = {200: "OK", 404: "Not Found"}


def handle(raw):
    req = parse(raw)
    for pattern, view in ROUTES:
        m = pattern.match(req.path)
        if m:
            resp = view(req, *m.groups())
            break
    else:
        resp = not_found(req)
    body = resp["body"].encode("utf-8")
    head = [
        f"HTTP/1.1 {resp['status']} {REASONS[resp['status']]}",
        f"Content-Type: {resp['content_type']}; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive",
    ]
    return "\r\n".join(head).encode("ascii") + b"\r\n\r\n" + body


def _raw_request(i):
    path = (
        f"/users/{i % 500}?page={i % 7}&sort=name",
        f"/api/orders/{i % 900}?status=open&limit=20",
        "/static/missing%20file.css",
    )[i % 3]
    return (
        f"GET {path} HTTP/1.1\r\nHost: example.org\r\nUser-Agent: bench/1.0\r\n"
        f"Accept: */*\r\nCookie: sid={i:08x}\r\nX-User: user{i % 50}\r\n\r\n"
    ).encode("latin-1")


RAW = [_raw_request(i) for i in range(64)]


def run():
    size = 0
    for i in range(REQUESTS):
        size += len(handle(RAW[i % len(RAW)]))
    return size


if __name__ == "__main__":
    t0 = time.perf_counter()
    run()
    print(f"{__file__}: {time.perf_counter() - t0:.3f} s")
