"""Every loss against a slow loop oracle and analytic values."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssps_trainers.losses import (
    dino_cross_entropy,
    moco_infonce,
    nt_xent,
    sinkhorn_knopp,
    swav_swapped_prediction,
    vicreg,
)


def nt_xent_loop(z1, z2, temperature):
    z = F.normalize(torch.cat([z1, z2]), dim=1).double()
    n, b = z.shape[0], z1.shape[0]
    total = 0.0
    for i in range(n):
        positive = (i + b) % n
        denominator = sum(math.exp(float(z[i] @ z[j]) / temperature) for j in range(n) if j != i)
        total += -(float(z[i] @ z[positive]) / temperature - math.log(denominator))
    return total / n


def test_nt_xent_matches_loop() -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    got = nt_xent(z1, z2, z1, z2, 0, 0.5)
    assert float(got) == pytest.approx(nt_xent_loop(z1, z2, 0.5), rel=1e-5)


def test_nt_xent_identical_orthonormal_views() -> None:
    b, tau = 4, 0.5
    z = torch.eye(8)[:b]
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + (2 * b - 2)))
    assert float(nt_xent(z, z, z, z, 0, tau)) == pytest.approx(expected, rel=1e-6)


def test_nt_xent_split_over_ranks_averages_to_the_full_loss() -> None:
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    full = nt_xent(z1, z2, z1, z2, 0, 0.2)
    halves = [nt_xent(z1[r * 3 : r * 3 + 3], z2[r * 3 : r * 3 + 3], z1, z2, r * 3, 0.2) for r in (0, 1)]
    assert float(sum(halves) / 2) == pytest.approx(float(full), rel=1e-6)


def test_moco_matches_loop() -> None:
    g = torch.Generator().manual_seed(2)
    q = F.normalize(torch.randn(4, 6, generator=g), dim=1)
    k = F.normalize(torch.randn(4, 6, generator=g), dim=1)
    queue = F.normalize(torch.randn(10, 6, generator=g), dim=1)
    expected = 0.0
    for i in range(4):
        logits = [float(q[i] @ k[i]) / 0.07] + [float(q[i] @ queue[j]) / 0.07 for j in range(10)]
        expected += -(logits[0] - math.log(sum(math.exp(v) for v in logits)))
    assert float(moco_infonce(q, k, queue, 0.07)) == pytest.approx(expected / 4, rel=1e-5)


def test_sinkhorn_marginals() -> None:
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(32, 8, generator=g) * 0.1
    codes = sinkhorn_knopp(scores, epsilon=0.05, iterations=50)
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(32))  # each sample: a distribution
    torch.testing.assert_close(codes.sum(dim=0), torch.full((8,), 32 / 8), atol=1e-3, rtol=1e-3)
    three = sinkhorn_knopp(scores, epsilon=0.05, iterations=3)
    torch.testing.assert_close(three.sum(dim=1), torch.ones(32))


def test_swav_matches_loop() -> None:
    g = torch.Generator().manual_seed(4)
    s1, s2 = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    c1, c2 = torch.softmax(torch.randn(3, 5, generator=g), 1), torch.softmax(torch.randn(3, 5, generator=g), 1)
    expected = 0.0
    for i in range(3):
        p1 = torch.log_softmax(s1[i] / 0.1, 0)
        p2 = torch.log_softmax(s2[i] / 0.1, 0)
        expected += -float((c2[i] * p1).sum()) - float((c1[i] * p2).sum())
    assert float(swav_swapped_prediction(s1, s2, c1, c2, 0.1)) == pytest.approx(expected / 6, rel=1e-5)


def test_vicreg_terms_on_known_tensors() -> None:
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    total, terms = vicreg(z, z.clone())
    assert float(terms["invariance"]) == 0.0
    # dim 0: var = 4/3, std = sqrt(4/3 + 1e-4) > 1 -> 0; dim 1: std = sqrt(1e-4) = 0.01 -> 0.99
    assert float(terms["variance"]) == pytest.approx(2 * (0.99 / 2), rel=1e-6)
    assert float(terms["covariance"]) == pytest.approx(0.0)
    a = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])  # perfectly correlated dims
    total, terms = vicreg(a, a + 1.0)
    cov = torch.cov(a.T)
    assert float(terms["covariance"]) == pytest.approx(2 * 2 * float(cov[0, 1]) ** 2 / 2)
    assert float(terms["invariance"]) == pytest.approx(1.0)
    assert float(total) == pytest.approx(1.0 + float(terms["variance"]) + 0.04 * float(terms["covariance"]))


def test_dino_matches_loop() -> None:
    g = torch.Generator().manual_seed(5)
    student, teacher = torch.randn(6, 3, 7, generator=g), torch.randn(2, 3, 7, generator=g)
    center = torch.randn(7, generator=g) * 0.1
    expected, pairs = 0.0, 0
    for j in range(2):
        target = torch.softmax((teacher[j] - center) / 0.04, dim=-1)
        for i in range(6):
            if i == j:
                continue
            expected += float((-(target * torch.log_softmax(student[i] / 0.1, -1)).sum(-1)).mean())
            pairs += 1
    assert pairs == 10
    got = dino_cross_entropy(student, teacher, center, 0.1, 0.04)
    assert float(got) == pytest.approx(expected / pairs, rel=1e-5)
