"""An event bus: every session subscribes a callback and never
unsubscribes, so the sessions (and their state) stay alive."""
# expect-kind: python

import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))


class EventBus:
    def __init__(self):
        self._subscribers = []

    def subscribe(self, callback):
        self._subscribers.append(callback)

    def publish(self, event):
        for callback in self._subscribers[-5:]:
            callback(event)


class Session:
    def __init__(self, bus, sid):
        self.sid = sid
        self.state = {"user": sid, "cart": list(range(10))}  # LEAK
        bus.subscribe(self.on_event)

    def on_event(self, event):
        self.state["last"] = event


bus = EventBus()
deadline = time.monotonic() + DURATION
sid = 0
while time.monotonic() < deadline:
    session = Session(bus, sid)
    bus.publish(("login", sid))
    del session
    sid += 1
