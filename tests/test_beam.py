"""Constrained beam search: only existing IDs, and equal to brute force with a wide beam."""

import numpy as np
import pytest
import torch

from gsid.errors import GsidError
from gsid.retrieval.beam import brute_force_search, constrained_beam_search
from gsid.retrieval.trie import CodeTrie


def random_trie(rng, dense=True):
    n, L, K = int(rng.integers(1, 40)), int(rng.integers(1, 5)), int(rng.integers(1, 6))
    codes = rng.integers(0, K, (n, L))
    lengths = rng.integers(1, L + 1, n)
    codes[np.arange(L)[None, :] >= lengths[:, None]] = -1
    ids = {tuple(int(c) for c in r[:m]) for r, m in zip(codes, lengths, strict=True)}
    return CodeTrie.from_codes(
        codes, lengths, vocab_size=K, dense_limit=1 << 20 if dense else 0
    ), ids


def toy_model(n_queries, levels, K, seed):
    """A deterministic step function whose log-probs depend on the query and the whole prefix."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n_queries, K + 1, generator=g) * 2
    emb = torch.randn(max(levels, 1), K, K + 1, generator=g) * 2

    def logits_fn(state, tokens):  # (B, W, t) -> (B, W, K + 1)
        B, W, t = tokens.shape
        x = q[:, None, :].expand(B, W, K + 1).clone()
        for j in range(t):
            x = x + emb[j][tokens[:, :, j]] * (j + 1)
        return torch.log_softmax(x, -1)

    return logits_fn


def generated(res, b):
    return [
        tuple(int(c) for c in res.codes[b, r] if c >= 0)
        for r in range(res.nodes.shape[1])
        if res.nodes[b, r] >= 0
    ]


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_equals_brute_force(length_penalty):
    rng = np.random.default_rng(0)
    for trial in range(80):
        trie, ids = random_trie(rng, dense=trial % 2 == 0)
        fn = toy_model(3, trie.n_levels, trie.n_codes, trial)
        R = int(rng.integers(1, 6))
        beam = constrained_beam_search(
            fn, None, trie, 3, beam_width=trie.n_nodes, n_results=R, length_penalty=length_penalty
        )
        ref = brute_force_search(fn, None, trie, 3, R, length_penalty=length_penalty)
        assert torch.allclose(beam.scores, ref.scores, atol=1e-5)
        assert torch.equal(beam.nodes, ref.nodes)
        assert torch.equal(beam.codes, ref.codes)
        for b in range(3):
            assert len(generated(beam, b)) == min(R, len(ids))


def test_narrow_beam_only_generates_existing_ids():
    rng = np.random.default_rng(1)
    for trial in range(80):
        trie, ids = random_trie(rng, dense=trial % 2 == 1)
        fn = toy_model(4, trie.n_levels, trie.n_codes, trial)
        res = constrained_beam_search(fn, None, trie, 4, beam_width=2, n_results=3)
        for b in range(4):
            out = generated(res, b)
            assert out and all(c in ids for c in out)
            assert len(set(out)) == len(out)
            s = res.scores[b][res.nodes[b] >= 0]
            assert (s[:-1] >= s[1:]).all()  # best first


def test_scores_are_id_log_probs():
    # fixed-length IDs: score = sum of the log-probs of its codes (EOS is free at a leaf)
    codes = np.array([[0, 0], [0, 1], [1, 1]])
    trie = CodeTrie.from_codes(codes, vocab_size=2)
    fn = toy_model(1, 2, 2, 7)
    res = constrained_beam_search(fn, None, trie, 1, beam_width=3)
    for r in range(3):
        c = res.codes[0, r]
        lp0 = fn(None, torch.zeros(1, 1, 0, dtype=torch.long))[0, 0, c[0]]
        lp1 = fn(None, c[:1].view(1, 1, 1))[0, 0, c[1]]
        assert abs(float(res.scores[0, r]) - float(lp0 + lp1)) < 1e-5


def test_bad_arguments():
    trie = CodeTrie.from_codes(np.array([[0], [1]]), vocab_size=2)
    fn = toy_model(1, 1, 2, 0)
    with pytest.raises(GsidError):
        constrained_beam_search(fn, None, trie, 1, beam_width=0)
    with pytest.raises(GsidError, match="shape"):
        constrained_beam_search(lambda s, t: torch.zeros(1, 1, 5), None, trie, 1, beam_width=1)
