"""Helpers of the webapp package; one of them remembers too much."""

_seen_tokens = {}


def check_token(token):
    # Meant as a tiny replay guard, but nothing ever expires.
    _seen_tokens[token] = {"token": token, "uses": 1}  # LEAK
    return True


def render(rows):
    return "\n".join(f"<tr><td>{r}</td></tr>" for r in rows)
