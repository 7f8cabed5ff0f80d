"""Admission control: bounded searches in flight, a bounded queue with a deadline, "busy".

The slow search is a reranker that holds its caller until the test lets it go, so every count
below is exact: which calls run, which wait, which are turned away and how fast.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import anyio
import anyio.to_thread
import pytest
from mcp import Client
from mcp_types import TextContent

from devrag.retrieval.models import Embedder
from devrag.retrieval.search import Filters
from devrag.server.admission import SKIPPED_RERANK_NOTE, Admission, ServerBusyError
from devrag.server.mcp_app import create_server
from devrag.server.settings import Settings
from devrag.server.state import App, Models
from devrag.server.tools import search_tool
from tests.server.mcp_support import Ingested

QUERY = "NodeFilesystemAlmostOutOfSpace"


def wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@contextmanager
def threads(target: Callable[[int], None], count: int, ready: Callable[[int], bool]) -> Iterator[None]:
    """`count` threads running `target(n)`, each started once `ready(n)` holds of the one before."""
    started: list[threading.Thread] = []
    try:
        for n in range(count):
            started.append(threading.Thread(target=target, args=(n,), daemon=True))
            started[-1].start()
            wait_until(lambda n=n: ready(n))  # type: ignore[misc]
        yield
    finally:
        for thread in started:
            thread.join(30)


def holder(admission: Admission, release: threading.Event, order: list[int]) -> Callable[[int], None]:
    """A search that notes its ticket once admitted and holds its slot until `release`."""

    def search(ticket: int) -> None:
        with admission.slot():
            order.append(ticket)
            release.wait(30)

    return search


def test_calls_beyond_the_slots_and_queue_are_turned_away_at_once_and_the_queue_is_served_in_order():
    admission = Admission(limit=2, queue=3, wait_s=30)
    release = threading.Event()
    order: list[int] = []
    search = holder(admission, release, order)

    with threads(search, 2, lambda n: len(order) == n + 1):
        with threads(lambda n: search(2 + n), 3, lambda n: admission.waiting == n + 1):
            started = time.monotonic()
            for _ in range(10):
                with pytest.raises(ServerBusyError, match=r"busy.*queue is full.*Retry"):
                    with admission.slot():
                        pytest.fail("admitted past the queue")
            assert time.monotonic() - started < 1
            release.set()
    assert sorted(order) == [0, 1, 2, 3, 4] and order[:2] == [0, 1] and admission.shed == 10


def test_a_freed_slot_goes_to_the_longest_waiter():
    admission = Admission(limit=1, queue=5, wait_s=30)
    release = threading.Event()
    order: list[int] = []

    with threads(holder(admission, release, order), 6, lambda n: len(order) == 1 and admission.waiting == n):
        release.set()
    assert order == [0, 1, 2, 3, 4, 5]


def test_a_queued_call_past_its_deadline_is_turned_away():
    admission = Admission(limit=1, queue=4, wait_s=0.3)
    release = threading.Event()

    held = threading.Event()

    def hold(_: int) -> None:
        with admission.slot():
            held.set()
            release.wait(30)

    with threads(hold, 1, lambda _: held.is_set()):
        started = time.monotonic()
        with pytest.raises(ServerBusyError, match=r"waited 0.3 s for its turn.*Retry"):
            with admission.slot():
                pytest.fail("admitted while the slot was held")
        assert 0.25 <= time.monotonic() - started < 5
        assert admission.waiting == 0
        release.set()
    with admission.slot():  # the slot came back
        pass


def test_a_caller_whose_wait_would_pass_the_deadline_at_the_recent_pace_is_told_at_once():
    admission = Admission(limit=1, queue=10, wait_s=1)
    for _ in range(4):
        with admission.slot():
            time.sleep(0.4)  # the recent pace: 0.4 s a search
    release = threading.Event()
    held: list[int] = []

    def search(ticket: int) -> None:
        with admission.slot():
            held.append(ticket)
            release.wait(30)

    with threads(search, 3, lambda n: len(held) == 1 and admission.waiting == n):
        started = time.monotonic()  # two waiting: a third would start after about 1.2 s
        with pytest.raises(ServerBusyError, match=r"would wait about 1 s.*Retry"):
            with admission.slot():
                pytest.fail("admitted past the deadline")
        assert time.monotonic() - started < 0.5
        release.set()
    assert held == [0, 1, 2]


class GatedReranker:
    """A reranker that holds its first caller until `release` is set: a search that takes long."""

    name = "gated"

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        self.entered.set()
        assert self.release.wait(30)
        return [float(-i) for i, _ in enumerate(passages)]


@pytest.fixture
def gated() -> GatedReranker:
    return GatedReranker()


@contextmanager
def app_with(ops: Ingested, embedder: Embedder, reranker: GatedReranker, **settings: object):
    app = App(Settings(index_dir=ops.index_dir, **settings), Models.loaded(embedder, reranker))  # type: ignore[arg-type]
    try:
        yield app
    finally:
        reranker.release.set()
        app.close()


@pytest.mark.model
def test_a_busy_server_refuses_a_search_quickly_by_default(ops, real_embedder, gated):
    with app_with(ops, real_embedder, gated, search_queue=0) as app:

        def slow(_: int) -> None:
            app.search(QUERY, 3, "hybrid+rerank", Filters())

        with threads(slow, 1, lambda _: gated.entered.is_set()):
            started = time.monotonic()
            with pytest.raises(ServerBusyError, match="Retry this search in a few seconds"):
                app.search(QUERY, 3, "hybrid+rerank", Filters())
            assert time.monotonic() - started < 1
            gated.release.set()
        assert app.search(QUERY, 3, "hybrid+rerank", Filters()).reranked


@pytest.mark.model
def test_when_busy_hybrid_answers_without_the_rerank_stage(ops, real_embedder, gated):
    with app_with(ops, real_embedder, gated, search_queue=0, search_when_busy="hybrid") as app:
        with threads(
            lambda _: app.search(QUERY, 3, "hybrid+rerank", Filters()) and None,
            1,
            lambda _: gated.entered.is_set(),
        ):
            response = app.search(QUERY, 3, "hybrid+rerank", Filters())
            answer = search_tool(app, QUERY, k=3)
            gated.release.set()
    assert (response.mode, response.reranked) == ("hybrid", False)
    assert response.results[0].path == "runbooks/disk.md"
    assert answer.output.mode == "hybrid" and SKIPPED_RERANK_NOTE in answer.text, "the agent is told"


@pytest.mark.model
@pytest.mark.anyio
async def test_the_busy_error_reaches_the_model_as_a_tool_error_that_says_to_retry(ops, real_embedder, gated):
    settings = Settings(index_dir=ops.index_dir, search_queue=0)
    server = create_server(settings, Models.loaded(real_embedder, gated))  # type: ignore[arg-type]
    async with Client(server) as client:
        first = []
        async with anyio.create_task_group() as tg:

            async def slow() -> None:
                first.append(await client.call_tool("search", {"query": QUERY}))

            tg.start_soon(slow)
            assert await anyio.to_thread.run_sync(gated.entered.wait, 30)
            busy = await client.call_tool("search", {"query": QUERY})
            gated.release.set()
    assert busy.is_error
    (block,) = busy.content
    assert isinstance(block, TextContent) and "server is busy" in block.text and "Retry" in block.text
    assert not first[0].is_error


def test_a_queue_that_would_take_every_worker_thread_is_refused():
    with pytest.raises(ValueError, match="at most 30 searches can run or wait"):
        Settings(search_in_flight=2, search_queue=29)
    assert Settings(search_in_flight=1, search_queue=29).search_queue == 29
