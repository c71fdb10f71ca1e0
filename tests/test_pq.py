"""Product-quantised item vectors: faiss's codes read back right (4-bit packing included), and
the asymmetric inner products equal those of the reconstructions."""

from __future__ import annotations

import numpy as np
import pytest

from gsid.errors import ArtifactError, GsidError
from gsid.retrieval.pq import PQVectors, parse_spec


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal((600, 24)).astype(np.float32)


@pytest.mark.parametrize("spec", ["PQ8", "PQ6x4", "PQ3x4"])
def test_codes_decode_like_faiss_and_dot_matches(x, spec):
    import faiss

    pq = PQVectors.fit(x, spec)
    m, nbits = parse_spec(spec)
    assert pq.codes.shape == (600, (m * nbits + 7) // 8) and pq.spec == f"PQ{m}x{nbits}"
    ref = faiss.ProductQuantizer(24, m, nbits)
    faiss.copy_array_to_vector(pq.centroids.ravel(), ref.centroids)
    np.testing.assert_allclose(pq.decode(), ref.decode(pq.codes), atol=1e-6)
    q = np.random.default_rng(1).standard_normal((3, 24)).astype(np.float32)
    rows, query = np.array([5, 0, 599, 7, 7]), np.array([0, 0, 1, 2, 2])
    np.testing.assert_allclose(
        pq.dot(q, rows, query), (pq.decode(rows) * q[query]).sum(1), atol=1e-5
    )
    # more bits per vector, closer reconstructions than the mean vector
    assert np.square(pq.decode() - x).mean() < np.square(x - x.mean(0)).mean()


def test_residual_pq_adds_the_group_means(x, tmp_path):
    groups = (np.arange(600) % 3).astype(np.int64)
    x = x + 5.0 * groups[:, None]  # three far-apart groups
    plain, resid = PQVectors.fit(x, "PQ6x4"), PQVectors.fit(x, "RPQ6x4", groups)
    assert resid.spec == "RPQ6x4" and resid.group.dtype == np.uint8 and resid.means.shape == (3, 24)
    np.testing.assert_allclose(resid.means[1], x[groups == 1].mean(0), atol=1e-5)
    # quantising what is left after the group mean loses less
    assert np.square(resid.decode() - x).mean() < np.square(plain.decode() - x).mean()
    q = np.random.default_rng(2).standard_normal((2, 24)).astype(np.float32)
    rows, query = np.array([1, 2, 3, 598]), np.array([0, 1, 1, 0])
    np.testing.assert_allclose(
        resid.dot(q, rows, query), (resid.decode(rows) * q[query]).sum(1), atol=1e-4
    )
    assert resid.nbytes() == plain.nbytes() + resid.means.nbytes + 600
    resid.save(tmp_path, "r")
    again = PQVectors.load(tmp_path, "r", "RPQ6x4")
    assert np.array_equal(again.decode(), resid.decode())
    with pytest.raises(GsidError, match="group id"):
        PQVectors.fit(x, "RPQ6x4")
    (tmp_path / "r_pq_group.npy").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        PQVectors.load(tmp_path, "r", "RPQ6x4")


def test_specs_save_load_and_errors(x, tmp_path):
    with pytest.raises(GsidError, match="form"):
        parse_spec("OPQ8")
    with pytest.raises(GsidError, match="nbits"):
        parse_spec("PQ8x6")
    with pytest.raises(GsidError, match="divide"):
        PQVectors.fit(x, "PQ5")
    with pytest.raises(GsidError, match="at least 256"):
        PQVectors.fit(x[:100], "PQ8")
    pq = PQVectors.fit(x, "PQ4x4")
    pq.save(tmp_path, "v")
    again = PQVectors.load(tmp_path, "v", "PQ4x4")
    assert np.array_equal(again.codes, pq.codes) and again.nbytes() == pq.nbytes()
    (tmp_path / "v_pq_codes.npy").write_bytes(b"junk")
    with pytest.raises(ArtifactError, match="corrupted"):
        PQVectors.load(tmp_path, "v", "PQ4x4")
