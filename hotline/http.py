"""The service's small HTTP listener: ``/metrics`` (Prometheus text) and ``/healthz``.

``/healthz`` answers 200 when every enabled part is healthy and 503 otherwise, with a
JSON body saying which part is not, so a load balancer and a human read the same page.
Health checks may return Deferreds (the DB ping runs off the reactor).
"""
from __future__ import annotations

import json
from typing import Any, Callable

from twisted.internet import defer
from twisted.web import resource, server

from hotline.metrics import HotlineMetrics

HealthCheck = Callable[[], "Any"]  # returns a dict with at least {"ok": bool}, or a Deferred of it


class MetricsResource(resource.Resource):
    isLeaf = True

    def __init__(self, metrics: HotlineMetrics):
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; version=0.0.4; charset=utf-8")
        return self.metrics.render()


class HealthResource(resource.Resource):
    isLeaf = True

    def __init__(self, checks: dict[str, HealthCheck]):
        super().__init__()
        self.checks = checks

    @defer.inlineCallbacks
    def _gather(self):
        parts: dict[str, Any] = {}
        for name, check in self.checks.items():
            try:
                parts[name] = yield defer.maybeDeferred(check)
            except Exception as exc:  # a failing check is a finding, not a crash
                parts[name] = {"ok": False, "error": str(exc) or type(exc).__name__}
        return parts

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json")

        def done(parts: dict[str, Any]) -> None:
            healthy = all(part.get("ok") for part in parts.values())
            request.setResponseCode(200 if healthy else 503)
            body = {"status": "ok" if healthy else "unhealthy", **parts}
            request.write(json.dumps(body, default=str).encode())
            request.finish()

        self._gather().addCallback(done)
        return server.NOT_DONE_YET


def make_site(metrics: HotlineMetrics, checks: dict[str, HealthCheck]) -> server.Site:
    root = resource.Resource()
    root.putChild(b"metrics", MetricsResource(metrics))
    root.putChild(b"healthz", HealthResource(checks))
    site = server.Site(root)
    site.noisy = False
    return site
