"""What an operator reads from an HTTP server: `/metrics`, `/healthz`, `/readyz`, and the index lag.

`/metrics` sits behind the bearer token like `/mcp`: it names repositories and how each is used.
`/healthz` and `/readyz` sit outside it, where load balancers and Kubernetes probes (which send no
token) reach them: they answer fixed words only (check names, pass or fail, counts; never a path,
a model name or a query), and `/readyz` runs its probe at most once per `_READY_CACHE_S`, so an
unauthenticated caller can neither learn much nor make the server work. All three check Host and
Origin as `/mcp` does, against DNS rebinding from a browser.
"""

from __future__ import annotations

import logging
import threading
import time

import anyio.to_thread
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devrag.ingest.status import repo_lag
from devrag.retrieval.errors import DevragError
from devrag.server.health import Check, failed, index_check, leg_checks
from devrag.server.metrics import ServerMetrics
from devrag.server.state import App

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
_READY_CACHE_S = 5.0


class Operations:
    """A companion of the HTTP server's App: its operator endpoints and a thread refreshing lag.

    The lag gauges are recomputed every `lag_interval` seconds (from each clone's HEAD, a few
    git calls per repository) and right after each of the server's own ingests.
    """

    def __init__(
        self, metrics: ServerMetrics, security: TransportSecuritySettings, lag_interval: float = 30.0
    ) -> None:
        self.metrics = metrics
        self._guard = TransportSecurityMiddleware(security)
        self._lag_interval = lag_interval
        self._app: App | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh_lag, name="devrag-lag", daemon=True)
        self._ready: tuple[float, list[Check]] | None = None
        self._ready_lock = threading.Lock()

    def start(self, app: App) -> None:
        self._app = app
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.metrics.ingest_finished.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._app = None

    def metrics_app(self) -> Starlette:
        return Starlette(routes=[Route(METRICS_PATH, self._metrics, methods=["GET"])])

    def health_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(HEALTH_PATH, self._healthz, methods=["GET"]),
                Route(READY_PATH, self._readyz, methods=["GET"]),
            ]
        )

    async def _metrics(self, request: Request) -> Response:
        refused = await self._guard.validate_request(request)
        return refused or Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def _healthz(self, request: Request) -> Response:
        refused = await self._guard.validate_request(request)
        return refused or JSONResponse({"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        refused = await self._guard.validate_request(request)
        if refused:
            return refused
        checks = await anyio.to_thread.run_sync(self.readiness)
        body = {"ready": not failed(checks), "checks": [c.model_dump() for c in checks]}
        return JSONResponse(body, status_code=503 if failed(checks) else 200)

    def readiness(self) -> list[Check]:
        """The checks of `/readyz`, reused for `_READY_CACHE_S` seconds."""
        with self._ready_lock:
            now = time.monotonic()
            if self._ready is None or now - self._ready[0] > _READY_CACHE_S:
                app = self._app
                checks = readiness(app) if app else [Check(name="server", ok=False, detail="starting")]
                self._ready = (now, checks)
            return self._ready[1]

    def _refresh_lag(self) -> None:
        while not self._stop.is_set():
            app = self._app
            try:
                if app is not None:
                    self.metrics.set_lag(repo_lag(state) for state in app.index().repos())
            except DevragError as exc:
                log.warning("index lag not refreshed: %s", exc)
            except Exception:  # a thread boundary: keep refreshing
                log.exception("index lag not refreshed")
            self.metrics.ingest_finished.wait(self._lag_interval)
            self.metrics.ingest_finished.clear()


def readiness(app: App) -> list[Check]:
    """Models loaded, index open and not empty, each first-stage leg answering a probe query.

    Details are fixed words (the server log has the causes): these answers go out without a token.
    """
    status = app.models.status
    models_ok = status.startswith("ready")
    words = (
        "ready" if models_ok else ("loading" if status == "loading" else "failed to load: see the server log")
    )
    checks = [Check(name="models", ok=models_ok, detail=words)]
    try:
        index = app.index()
        checks.append(index_check(index))
    except DevragError as exc:
        log.warning("readiness: %s", exc)
        return [*checks, Check(name="index", ok=False, detail="not open: see the server log")]
    if failed(checks):
        return checks
    try:
        return checks + leg_checks(app.searcher())
    except DevragError as exc:  # an index built with another model or chunker
        log.warning("readiness: %s", exc)
        return [*checks, Check(name="compatibility", ok=False, detail="index and models differ: see the log")]
