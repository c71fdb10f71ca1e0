"""CodeTrie: structure, item ranges and vectorised masks against naive per-beam checks."""

import numpy as np
import pytest
import torch

from gsid.errors import ArtifactError, DataValidationError
from gsid.ids.semantic_ids import SemanticIDs
from gsid.retrieval.trie import CodeTrie


def random_codes(rng, n, levels, k, variable=True):
    codes = rng.integers(0, k, (n, levels))
    lengths = rng.integers(1, levels + 1, n) if variable else np.full(n, levels)
    codes[np.arange(levels)[None, :] >= lengths[:, None]] = -1
    return codes, lengths


def id_set(codes, lengths):
    return {tuple(int(c) for c in r[:n]) for r, n in zip(codes, lengths, strict=True)}


@pytest.mark.parametrize("dense", [True, False])
def test_masks_ranges_and_walks_match_naive(dense):
    rng = np.random.default_rng(0)
    for _ in range(60):
        n, L, K = int(rng.integers(1, 30)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
        codes, lengths = random_codes(rng, n, L, K)
        trie = CodeTrie.from_codes(
            codes, lengths, vocab_size=K, dense_limit=1 << 20 if dense else 0
        )
        assert trie.is_dense == dense
        ids = id_set(codes, lengths)
        prefixes = {()} | {p[:i] for p in ids for i in range(1, len(p) + 1)}
        nodes = {p: trie.walk(p) for p in prefixes}
        assert len(set(nodes.values())) == len(prefixes) == trie.n_nodes
        order = np.lexsort(codes.T[::-1])
        sc, sl = codes[order], lengths[order]
        batch = torch.tensor([*nodes.values(), -1])
        mask = trie.allowed(batch)  # one call for every node at once
        assert mask.shape == (len(batch), K + 1) and mask.dtype == torch.bool
        assert not mask[-1].any()  # a dead beam allows nothing
        got_codes = trie.node_codes(batch)
        for i, (p, node) in enumerate(nodes.items()):
            expected = np.zeros(K + 1, bool)
            for q in prefixes:
                if len(q) == len(p) + 1 and q[: len(p)] == p:
                    expected[q[-1]] = True
            expected[K] = p in ids  # EOS exactly where an ID ends
            assert (mask[i].numpy() == expected).all()
            under = [j for j in range(n) if sl[j] >= len(p) and tuple(sc[j, : len(p)]) == p]
            assert (int(trie.lo[node]), int(trie.hi[node])) == (min(under), max(under) + 1)
            exact = [j for j in range(n) if tuple(sc[j, : sl[j]]) == p]
            lo, hi = trie.exact_range(torch.tensor([node]))
            assert list(range(int(lo), int(hi))) == exact
            assert tuple(int(c) for c in got_codes[i] if c >= 0) == p
            for tok in range(K):  # advance agrees with the mask
                child = int(trie.advance(torch.tensor([node]), torch.tensor([tok])))
                assert (child >= 0) == bool(expected[tok])
                if child >= 0:
                    assert nodes[(*p, tok)] == child
        assert int(trie.advance(torch.tensor([0]), torch.tensor([K]))) == -1  # EOS is no edge


def test_dense_and_csr_agree():
    rng = np.random.default_rng(1)
    codes, lengths = random_codes(rng, 200, 4, 6)
    a = CodeTrie.from_codes(codes, lengths, vocab_size=6)
    b = CodeTrie.from_codes(codes, lengths, vocab_size=6, dense_limit=0)
    nodes = torch.randint(-1, a.n_nodes, (500,))
    toks = torch.randint(0, 7, (500,))
    assert torch.equal(a.allowed(nodes), b.allowed(nodes))
    assert torch.equal(a.advance(nodes, toks), b.advance(nodes, toks))


def test_variable_length_node_is_leaf_and_parent():
    # (1,) is a whole ID and also the prefix of (1, 0) and (1, 2)
    codes = np.array([[1, 0], [1, -1], [1, 2], [0, 1]])
    trie = CodeTrie.from_codes(codes, vocab_size=3)
    node = trie.walk([1])
    mask = trie.allowed(torch.tensor([node]))[0].tolist()
    assert mask == [True, False, True, True]  # codes 0 and 2, and EOS
    assert bool(trie.has_children[node]) and bool(trie.is_end[node])
    assert int(trie.n_end[node]) == 1 and int(trie.hi[node] - trie.lo[node]) == 3


def test_from_semantic_ids_and_save_load(tmp_path):
    rng = np.random.default_rng(2)
    codes, lengths = random_codes(rng, 50, 3, 4)
    ids = SemanticIDs.from_codes([f"i{j}" for j in range(50)], codes, lengths, [4, 4, 4])
    trie = CodeTrie.from_ids(ids)
    sorted_ids = ids.sorted_codes()[2]
    for item in ids.item_ids[:10]:
        node = trie.walk(ids.code_of(item))
        lo, hi = trie.exact_range(torch.tensor([node]))
        assert item in set(sorted_ids[int(lo) : int(hi)])
        assert (int(trie.lo[node]), int(trie.hi[node])) == ids.prefix_range(ids.code_of(item))
    trie.save(tmp_path / "trie")
    again = CodeTrie.load(tmp_path / "trie")
    nodes = torch.arange(-1, trie.n_nodes)
    assert torch.equal(trie.allowed(nodes), again.allowed(nodes))
    (tmp_path / "trie" / "trie.npz").write_bytes(b"broken")
    with pytest.raises(ArtifactError):
        CodeTrie.load(tmp_path / "trie")


def test_unsorted_codes_rejected():
    with pytest.raises(DataValidationError, match="sorted"):
        CodeTrie.from_sorted_codes(np.array([[1, 0], [0, 1]]), np.array([2, 2]), 2)


def test_int32_storage_and_int64_fallback():
    codes = np.array([[0, 1], [0, 2], [3, 1], [3, 3]])
    small = CodeTrie.from_codes(codes, vocab_size=4, dense_limit=0)
    assert small.lo.dtype == torch.int32 and small._key.dtype == torch.int32
    assert small.nbytes() == 9 * small.n_nodes * 4 - 4  # 8 arrays + the keys of non-root nodes
    # node keys parent * (K+1) + token that overflow int32 switch the storage to int64
    huge = CodeTrie.from_codes(codes, vocab_size=2**30, dense_limit=0)
    assert huge.lo.dtype == torch.int64
    for trie in (small, huge):
        assert trie.walk([3, 3]) > 0 and trie.walk([3, 2]) == -1
        nodes = trie.advance(torch.tensor([0, 0, -1]), torch.tensor([0, 3, 0]))
        assert nodes.dtype == torch.int64 and nodes[2] == -1
        assert trie.node_codes(nodes[:2]).tolist() == [[0, -1], [3, -1]]
