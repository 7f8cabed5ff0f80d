from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from devrag.ingest.windows import Window, split_lines


def words(text: str) -> int:
    return len(text.split())


def numbered_lines(spec: list[tuple[int, str]]) -> list[str]:
    """Lines of unique words (w0, w1, ...), `n` words each joined by `sep`, so windows can be traced back."""
    lines, k = [], 0
    for n, sep in spec:
        lines.append(sep.join(f"w{k + i}" for i in range(n)))
        k += n
    return lines


def word_spans(lines: list[str], windows: list[Window]) -> list[tuple[int, int]]:
    """Each window as [i, j) into the document's word sequence; asserts it is a contiguous run of it."""
    all_words = " ".join(lines).split()
    spans = []
    for w in windows:
        got = w.text.split()
        if not got:
            spans.append((-1, -1))
            continue
        i = all_words.index(got[0])
        assert all_words[i : i + len(got)] == got, w
        spans.append((i, i + len(got)))
    return spans


line_specs = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=30),
        st.sampled_from([" ", " ", "  ", "\t"]),
    ),
    min_size=0,
    max_size=25,
)


def test_no_lines_give_no_windows():
    assert split_lines([], 1, 10, words) == []


def test_lines_that_fit_make_one_window_of_the_exact_text():
    lines = ["check disk usage", "", "df -h /var"]
    assert split_lines(lines, 7, 20, words) == [Window("check disk usage\n\ndf -h /var", 7, 9)]


def test_windows_are_numbered_from_first_line():
    lines = numbered_lines([(3, " ")] * 6)
    windows = split_lines(lines, 41, 9, words, overlap=0)
    assert windows[0].start_line == 41
    assert windows[-1].end_line == 46
    for w in windows:
        assert w.text == "\n".join(lines[w.start_line - 41 : w.end_line - 40])


def test_the_next_window_starts_with_the_tail_of_the_previous_one():
    lines = numbered_lines([(3, " ")] * 8)  # each line costs 4 of the budget: 3 words and its newline
    windows = split_lines(lines, 1, 12, words, overlap=4)
    assert len(windows) > 1
    for before, after in zip(windows, windows[1:], strict=False):
        assert after.start_line == before.end_line
        assert after.text.split("\n")[0] == before.text.split("\n")[-1]


def test_without_overlap_windows_do_not_share_lines():
    lines = numbered_lines([(3, " ")] * 8)
    windows = split_lines(lines, 1, 12, words, overlap=0)
    assert [(w.start_line, w.end_line) for w in windows] == [(1, 3), (4, 6), (7, 8)]


def test_an_overlap_larger_than_the_budget_still_makes_progress():
    lines = numbered_lines([(2, " ")] * 10)
    windows = split_lines(lines, 1, 6, words, overlap=50)
    spans = word_spans(lines, windows)
    assert spans[-1][1] == 20
    assert all(b[1] > a[1] for a, b in zip(spans, spans[1:], strict=False))
    assert all(words(w.text) <= 6 for w in windows)


def test_a_single_over_long_line_is_cut_at_word_boundaries_within_budget():
    lines = numbered_lines([(25, " ")])
    windows = split_lines(lines, 3, 6, words, overlap=2)
    assert len(windows) > 1
    assert all((w.start_line, w.end_line) == (3, 3) for w in windows)
    assert all(words(w.text) <= 6 for w in windows)
    # Whole words only, and all of them, in order.
    assert " ".join(w.text for w in windows).split() == lines[0].split()


def test_a_long_line_is_cut_at_tabs_too():
    lines = numbered_lines([(12, "\t")])
    windows = split_lines(lines, 1, 5, words)
    assert all(words(w.text) <= 5 for w in windows)
    assert " ".join(w.text for w in windows).split() == lines[0].split()


def test_a_long_line_between_short_ones_keeps_its_neighbours_whole():
    lines = ["first line here", " ".join(f"x{i}" for i in range(20)), "last line here"]
    windows = split_lines(lines, 1, 8, words, overlap=0)
    assert windows[0] == Window("first line here", 1, 1)
    assert windows[-1].text.endswith("last line here")
    assert all(words(w.text) <= 8 for w in windows)


@settings(max_examples=300, deadline=None)
@given(
    spec=line_specs,
    first_line=st.integers(min_value=1, max_value=500),
    budget=st.integers(min_value=2, max_value=40),
    overlap=st.integers(min_value=0, max_value=20),
)
def test_windows_fit_cover_every_line_overlap_at_most_overlap_and_progress(spec, first_line, budget, overlap):
    lines = numbered_lines(spec)
    windows = split_lines(lines, first_line, budget, words, overlap)
    if not lines:
        assert windows == []
        return
    last_line = first_line + len(lines) - 1
    line_of = {word: first_line + n for n, line in enumerate(lines) for word in line.split()}

    covered = set()
    for w in windows:
        assert words(w.text) <= budget
        assert first_line <= w.start_line <= w.end_line <= last_line
        covered.update(range(w.start_line, w.end_line + 1))
        for word in w.text.split():
            assert w.start_line <= line_of[word] <= w.end_line
    assert covered == set(range(first_line, last_line + 1))
    assert windows[0].start_line == first_line
    assert windows[-1].end_line == last_line

    all_spans = word_spans(lines, windows)
    spans = [s for s in all_spans if s != (-1, -1)]
    n_words = len(line_of)
    if n_words:
        assert spans[0][0] == 0
        assert spans[-1][1] == n_words
    for (i0, j0), (i1, j1) in zip(spans, spans[1:], strict=False):
        assert i1 <= j0, "a gap: words between two windows are in neither"
        assert j0 - i1 <= overlap, "more than `overlap` tokens carried over"
        assert i1 >= i0 and j1 >= j0
    # Each window moves on: it starts and ends later than the one before, in lines or in words.
    for (a, (i0, j0)), (b, (i1, j1)) in zip(
        zip(windows, all_spans, strict=True), zip(windows[1:], all_spans[1:], strict=True), strict=False
    ):
        assert b.start_line > a.start_line or i1 > i0, "no progress"
        assert b.end_line > a.end_line or j1 > j0, "no progress"
