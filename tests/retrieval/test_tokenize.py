from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devrag.retrieval.tokenize import STOP_WORDS, tokenize


def matches(query: str, text: str) -> bool:
    """True when every query term is among the text's terms: what BM25 can find."""
    return set(tokenize(query)) <= set(tokenize(text))


def test_camel_case_identifier_yields_whole_token_and_words() -> None:
    terms = tokenize("CrashLoopBackOff")
    assert terms[0] == "crashloopbackoff"
    assert {"crash", "loop", "back", "off"} <= set(terms)


def test_camel_case_identifier_is_found_by_adjacent_word_pairs() -> None:
    assert matches("crashloop", "pod in CrashLoopBackOff")
    assert matches("backoff", "ImagePullBackOff on node-3")


def test_hyphenated_identifier_yields_whole_token_and_parts() -> None:
    assert tokenize("kube-apiserver")[0] == "kube-apiserver"
    assert matches("apiserver", "kube-apiserver") and matches("kube", "kube-apiserver")


def test_snake_case_metric_is_found_whole_and_by_each_part() -> None:
    metric = "etcd_disk_wal_fsync_duration_seconds"
    assert metric in tokenize(metric)
    for part in ["etcd", "disk", "wal", "fsync", "duration", "seconds"]:
        assert matches(part, f"alert on {metric} p99"), part


def test_upper_snake_error_code_yields_whole_token_and_parts() -> None:
    assert tokenize("ERR_CONN_RESET") == ["err_conn_reset", "err", "conn", "reset"]


def test_status_code_is_its_own_token() -> None:
    assert tokenize("HTTP 503") == ["http", "503"]
    assert matches("503", "the ingress returned HTTP 503 Service Unavailable")


def test_dotted_label_with_path_is_found_whole_and_by_parts() -> None:
    label = "node.kubernetes.io/unreachable"
    terms = tokenize(label)
    assert terms[0] == label
    assert "node.kubernetes.io" in terms
    for part in ["node", "kubernetes", "io", "unreachable"]:
        assert matches(part, f"taint {label}:NoExecute"), part


def test_version_stays_whole_and_matches_without_its_v() -> None:
    assert tokenize("v1.2.3") == ["v1.2.3", "1.2.3"]
    assert matches("1.2.3", "upgrade to v1.2.3")
    assert not matches("2", "upgrade to v1.2.3")


def test_ip_address_stays_whole_without_matching_every_digit() -> None:
    assert tokenize("10.0.0.1:6443") == ["10.0.0.1:6443", "10.0.0.1", "6443"]
    assert "0" not in tokenize("10.0.0.1")


def test_file_path_is_found_by_directory_and_file_name_parts() -> None:
    path = "/etc/kubernetes/manifests/kube-apiserver.yaml"
    assert "etc/kubernetes/manifests/kube-apiserver.yaml" in tokenize(path)
    for part in ["kube-apiserver.yaml", "manifests", "apiserver", "yaml"]:
        assert matches(part, f"edit {path} on the node"), part


def test_stop_words_are_dropped_from_prose_but_not_from_identifiers() -> None:
    assert tokenize("The pod is in a crash loop") == ["pod", "crash", "loop"]
    assert "to" in tokenize("time-to-live")
    assert "it" in tokenize("IT_OPS")


def test_plurals_and_verb_forms_meet_at_one_stem() -> None:
    assert tokenize("pods restarted") == tokenize("pod restarting")
    assert tokenize("retries scheduled") == tokenize("retry schedule")


def test_words_ending_in_s_that_are_not_plurals_keep_it() -> None:
    assert tokenize("status process statuses processes") == ["status", "process"] * 2


def test_non_ascii_words_are_kept_lowercased_and_unstemmed() -> None:
    assert tokenize("Größe Prüfungen 東京") == ["größe", "prüfungen", "東京"]


def test_hex_ids_are_not_split_into_digit_fragments() -> None:
    assert tokenize("commit 3f9c2e1d") == ["commit", "3f9c2e1d"]


@pytest.mark.parametrize("text", ["", "   ", "!!!", "--", "...", "\x00\ud800"])
def test_text_without_word_characters_yields_no_tokens(text: str) -> None:
    assert tokenize(text) == []


@given(st.text())
def test_tokenize_never_raises_and_yields_lowercase_non_empty_tokens(text: str) -> None:
    for term in tokenize(text):
        assert term
        assert term == term.lower()


@given(st.text(), st.text())
def test_a_text_tokenizes_the_same_wherever_it_stands(left: str, right: str) -> None:
    # So a query's terms are exactly the terms the same words got inside a document.
    assert tokenize(f"{left} {right}") == tokenize(left) + tokenize(right)


@pytest.mark.parametrize("word", sorted(STOP_WORDS))
def test_every_stop_word_is_dropped_in_any_case(word: str) -> None:
    assert tokenize(f"{word} {word.upper()} {word.title()}") == []
