"""SpanIndex: counts, next tokens and locations agree with brute force; vectorised narrowing;
save / memory-mapped load; bad input and damaged files fail clearly."""

import numpy as np
import pytest

from gsid.errors import ArtifactError, DataValidationError, GsidError
from gsid.text.span_index import SpanIndex

V = 6


def _brute(titles, gram):
    hits = []
    for i, t in enumerate(titles):
        for p in range(len(t) - len(gram) + 1):
            if list(t[p : p + len(gram)]) == list(gram):
                hits.append((i, p))
    return hits


@pytest.fixture(scope="module")
def titles():
    rng = np.random.default_rng(0)
    return [list(rng.integers(0, V, rng.integers(0, 8))) for _ in range(60)]


@pytest.fixture(scope="module")
def index(titles):
    return SpanIndex.build(titles, vocab_size=V)


def test_count_and_locate_match_brute_force(index, titles):
    rng = np.random.default_rng(1)
    grams = [list(rng.integers(0, V, rng.integers(1, 5))) for _ in range(300)]
    counts = index.count(grams)
    for g, c in zip(grams, counts, strict=True):
        hits = _brute(titles, g)
        assert c == len(hits)
        items, pos = index.locate(g)
        assert list(zip(items.tolist(), pos.tolist(), strict=True)) == hits


def test_next_tokens_match_brute_force(index, titles):
    rng = np.random.default_rng(2)
    for _ in range(60):
        g = list(rng.integers(0, V, rng.integers(0, 3)))
        lo, hi = index.interval(g) if g else index.root()
        lo, hi = int(np.ravel(lo)[0]), int(np.ravel(hi)[0])
        toks, counts = index.next_tokens(lo, hi, len(g))
        want = {t: len(_brute(titles, [*g, t])) for t in range(V)}
        assert dict(zip(toks.tolist(), counts.tolist(), strict=True)) == {
            t: c for t, c in want.items() if c
        }


def test_narrow_is_vectorised_and_never_crosses_titles(index, titles):
    # every beam narrows one token per step from its own interval
    lo, hi = index.root(V)
    lo, hi = index.narrow(lo, hi, 0, np.arange(V))
    lo2, hi2 = index.narrow(lo, hi, 1, np.arange(V)[::-1].copy())
    for a in range(V):
        b = V - 1 - a
        assert hi2[a] - lo2[a] == len(_brute(titles, [a, b]))
    # the last token of one title followed by the first of the next is not an n-gram
    t = SpanIndex.build([[1, 2], [3, 4]], vocab_size=5)
    assert t.count([[2, 3], [1, 2], [3, 4], [4]]).tolist() == [0, 1, 1, 1]


@pytest.mark.parametrize("wide", [1024, 3])
def test_children_are_every_extension_with_its_interval(index, titles, wide):
    # wide=3: most intervals go through the memoised path; asked twice, the same answer
    rng = np.random.default_rng(3)
    grams = [list(rng.integers(0, V, rng.integers(1, 4))) for _ in range(80)]
    lo, hi = index.intervals(grams)
    depth = np.array([len(g) for g in grams])
    for _ in range(2):
        parent, tok, c_lo, c_hi = index.children(lo, hi, depth, wide=wide)
        assert (np.diff(parent) >= 0).all()
        for b, g in enumerate(grams):
            mine = parent == b
            assert (np.diff(tok[mine]) > 0).all()
            want = {t: index.interval([*g, t]) for t in range(V) if _brute(titles, [*g, t])}
            got = dict(zip(tok[mine].tolist(), zip(c_lo[mine].tolist(), c_hi[mine].tolist(),
                                                   strict=True), strict=True))  # fmt: skip
            assert got == want


def test_suffix_segments_name_the_titles_that_hold_a_span(index, titles):
    rng = np.random.default_rng(4)
    for _ in range(50):
        g = list(rng.integers(0, V, rng.integers(1, 3)))
        lo, hi = index.interval(g)
        items, _ = index.locate(g)
        assert sorted(index.suffix_segments()[lo:hi].tolist()) == items.tolist()


def test_save_load_mmap(index, tmp_path):
    index.save(tmp_path / "spans")
    back = SpanIndex.load(tmp_path / "spans")
    assert isinstance(back.sa.base, np.memmap) and not back.sa.flags.writeable  # mapped
    grams = [[0], [1, 2], [3, 3, 3]]
    assert back.count(grams).tolist() == index.count(grams).tolist()
    assert index.nbytes() / index.n_tokens <= 16 + 8 * (V + 1) / index.n_tokens + 8


@pytest.mark.parametrize("vocab", [V, 70_000])  # uint16 and uint32 texts
def test_tokengrams_backend_builds_the_same_array(vocab, capfd):
    pytest.importorskip("tokengrams")
    rng = np.random.default_rng(1)
    titles = [rng.integers(0, vocab, rng.integers(0, 9)).tolist() for _ in range(500)]
    ref = SpanIndex.build(titles, vocab_size=vocab)
    got = SpanIndex.build(titles, vocab_size=vocab, backend="tokengrams")
    np.testing.assert_array_equal(got.sa, ref.sa)
    np.testing.assert_array_equal(got.text, ref.text)
    assert capfd.readouterr().out == ""  # its builder's progress line is silenced


def test_bad_input():
    with pytest.raises(GsidError, match="backend 'sais' is unknown"):
        SpanIndex.build([[1]], backend="sais")
    with pytest.raises(DataValidationError, match="empty"):
        SpanIndex.build([])
    with pytest.raises(DataValidationError, match="tokenise to nothing"):
        SpanIndex.build([[], []])


def test_damaged_files_are_refused(index, tmp_path):
    path = index.save(tmp_path / "spans")
    sa = path / "sa.npy"
    sa.write_bytes(sa.read_bytes()[:-8])  # truncated
    with pytest.raises(ArtifactError, match="corrupted"):
        SpanIndex.load(path)
