"""Service awareness: a query that calls something a known service prefers that service's documents."""

from __future__ import annotations

import pytest

from devrag.ingest.pipeline import ingest
from devrag.retrieval.search import HybridIndex
from devrag.retrieval.search_config import SearchConfig
from devrag.retrieval.services import ServiceNames

SIDEKIQ = "docs/sidekiq/README.md"
CORPUS = {
    SIDEKIQ: "# Sidekiq\n\n## Overview\n\nSidekiq runs the background jobs of the application.\n",
    "docs/sidekiq/queues.md": "# Sidekiq queues\n\n## Queues\n\nEach queue has its own workers.\n",
    "docs/redis/README.md": "# Redis\n\n## Overview\n\nRedis keeps sessions and caches.\n",
    "docs/web/README.md": "# Web\n\n## Overview\n\nThe web fleet answers browser requests.\n",
    "docs/google-cloud-storage/README.md": "# GCS\n\n## Buckets\n\nObject storage buckets.\n",
    "guides/saturation.md": "# Saturation\n\n## Saturation and SLO\n\nA resource saturation exceeding "
    "its SLO, close to the capacity limit: saturation of memory, saturation of cpu.\n",
    "guides/capacity.md": "# Capacity planning\n\n## Limits\n\nCapacity limit and saturation forecasts.\n",
}
QUERY = "The memory resource of the sidekiq service (main stage) has a saturation exceeding SLO"


@pytest.fixture
def searchers(index, git_repo, embedder):
    repo = git_repo("runbooks")
    repo.commit(CORPUS)
    ingest(index, embedder, repo.path, "runbooks")
    aware = HybridIndex(index, embedder, None)
    plain = HybridIndex(index, embedder, None, SearchConfig(service_vote=0))
    yield aware, plain
    aware.close()
    plain.close()


def test_a_named_service_lifts_its_documents_as_evidence_not_as_a_filter(searchers):
    aware, plain = searchers
    before = [r.path for r in plain.search(QUERY, 5, "hybrid").results]
    response = aware.search(QUERY, 5, "hybrid")
    after = [r.path for r in response.results]
    assert response.services == ["sidekiq"] and plain.search(QUERY, 5, "hybrid").services == []
    assert before[0] == "guides/saturation.md" and after[0] == SIDEKIQ
    assert "guides/saturation.md" in after[:3], "other documents still rank by their own evidence"
    sidekiq = response.results[0].sections[0].scores
    assert sidekiq.service_rank is not None and sidekiq.service_score is not None


def test_only_the_fused_modes_take_the_service_vote(searchers):
    aware, plain = searchers
    for mode in ("dense", "bm25"):
        assert [r.path for r in aware.search(QUERY, 5, mode).results] == [
            r.path for r in plain.search(QUERY, 5, mode).results
        ]


def names(*services: str) -> ServiceNames:
    return ServiceNames(services)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("The cpu resource of the kube service (main stage)", ["kube"]),
        ('alert on service="redis-cache", not on redis', ["redis-cache"]),
        ("service: google-cloud-storage errors", ["google-cloud-storage"]),
        ("the Google Cloud Storage service is slow", ["google-cloud-storage"]),
        ("redis service and Kube Service", ["redis", "kube"]),
        ("kube pods restart on a redis node", []),  # a word, not called a service
        ("kubernetes service", []),  # another word that starts like one
    ],
)
def test_a_service_is_named_when_the_text_calls_it_a_service(text, named):
    assert names("kube", "redis", "redis-cache", "google-cloud-storage").named_in(text) == named
