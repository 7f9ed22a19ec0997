"""SSL losses as pure functions (docs/method.md §11.2). Queues, centres, prototypes and temperatures are
arguments; nothing here owns state or calls a collective: the method adapters gather first.

Sources (re-written, not copied): SimCLR NT-Xent (Chen et al., 2020; lightly-ai/lightly
`ntx_ent_loss.py`), MoCo v2+ InfoNCE with a queue (He et al., 2020; solo-learn
`mocov2plus.py`), SwAV swapped prediction + Sinkhorn-Knopp (Caron et al., 2020;
facebookresearch/swav), VICReg (Bardes et al., 2022), DINO (Caron et al., 2021;
facebookresearch/dino `DINOLoss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(
    z1: torch.Tensor,
    z2: torch.Tensor,
    all_z1: torch.Tensor,
    all_z2: torch.Tensor,
    offset: int,
    temperature: float,
) -> torch.Tensor:
    """NT-Xent for the local anchors of two views against the gathered global batch.

    z1, z2: (b, D) local views (not normalised; normalised here). all_z1, all_z2: (B, D)
    gathered views, where the local rows sit at [offset, offset + b). Each of the 2b local
    anchor rows has its other view as positive and the 2B - 2 other global rows as negatives;
    the loss is the mean over the 2b rows. With one process, all_z = z and offset = 0.
    """
    b, total = z1.shape[0], all_z1.shape[0]
    anchors = F.normalize(torch.cat([z1, z2]), dim=1)  # (2b, D)
    candidates = F.normalize(torch.cat([all_z1, all_z2]), dim=1)  # (2B, D)
    logits = anchors @ candidates.T / temperature  # (2b, 2B)
    local = torch.arange(b, device=z1.device) + offset
    own = torch.cat([local, local + total])  # each anchor's own column
    positive = torch.cat([local + total, local])  # its other view
    logits = logits.masked_fill(
        F.one_hot(own, 2 * total).bool(), float("-inf")
    )  # never its own negative
    return F.cross_entropy(logits, positive)


def moco_infonce(
    query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float
) -> torch.Tensor:
    """InfoNCE of queries (b, D) against their keys (b, D) and a negative queue (Q, D).

    All inputs L2-normalised; the keys and queue carry no gradient."""
    positive = (query * key).sum(dim=1, keepdim=True)  # (b, 1)
    negative = query @ queue.T  # (b, Q)
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(query.shape[0], dtype=torch.long, device=query.device))


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Soft equipartitioned codes (B, K) for prototype scores (B, K) (SwAV, Algorithm 1).

    Q = exp(scores / epsilon), then `iterations` rounds of: rows of Q^T (prototypes) sum to
    1/K, columns (samples) sum to 1/B; returned scaled so each sample's code sums to 1."""
    q = torch.exp((scores - scores.max()) / epsilon).T  # (K, B); shift for stability
    q = q / q.sum()
    num_prototypes, batch = q.shape
    for _ in range(iterations):
        q = q / q.sum(dim=1, keepdim=True) / num_prototypes
        q = q / q.sum(dim=0, keepdim=True) / batch
    return (q * batch).T  # (B, K)


def swav_swapped_prediction(
    scores1: torch.Tensor,
    scores2: torch.Tensor,
    codes1: torch.Tensor,
    codes2: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Swapped prediction: view 1's scores predict view 2's codes and vice versa.

    scores: (b, K) prototype scores z . c; codes: (b, K) Sinkhorn targets (no gradient)."""
    loss12 = -(codes2 * F.log_softmax(scores1 / temperature, dim=1)).sum(dim=1).mean()
    loss21 = -(codes1 * F.log_softmax(scores2 / temperature, dim=1)).sum(dim=1).mean()
    return 0.5 * (loss12 + loss21)


def vicreg(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance_weight: float = 1.0,
    variance_weight: float = 1.0,
    covariance_weight: float = 0.04,
    eps: float = 1e-4,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """VICReg on (B, D) projections (the global batch). Returns the weighted sum and terms.

    invariance: MSE(z1, z2); variance: mean(relu(1 - sqrt(var + eps))) per branch, the two
    summed; covariance: sum of squared off-diagonal covariances / D per branch, summed."""
    invariance = F.mse_loss(z1, z2)
    variance = z1.new_zeros(())
    covariance = z1.new_zeros(())
    batch, dim = z1.shape
    for z in (z1, z2):
        centred = z - z.mean(dim=0)
        std = torch.sqrt(centred.var(dim=0) + eps)
        variance = variance + F.relu(1.0 - std).mean()
        cov = centred.T @ centred / (batch - 1)  # (D, D)
        off_diagonal = cov - torch.diag(torch.diagonal(cov))
        covariance = covariance + off_diagonal.square().sum() / dim
    total = invariance_weight * invariance + variance_weight * variance + covariance_weight * covariance
    return total, {"invariance": invariance, "variance": variance, "covariance": covariance}


def dino_cross_entropy(
    student: torch.Tensor,
    teacher: torch.Tensor,
    center: torch.Tensor,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.04,
) -> torch.Tensor:
    """DINO loss: student logits (n_student, b, K) of all crops (globals first), teacher logits
    (n_teacher, b, K) of the global crops (before centring). Each teacher crop j is paired with
    every student crop i != j (for 2 globals + 4 locals: 10 pairs); mean over pairs and batch."""
    targets = F.softmax((teacher - center) / teacher_temperature, dim=-1).detach()
    log_probs = F.log_softmax(student / student_temperature, dim=-1)
    total = student.new_zeros(())
    pairs = 0
    for j in range(teacher.shape[0]):
        for i in range(student.shape[0]):
            if i == j:
                continue
            total = total + (-(targets[j] * log_probs[i]).sum(dim=-1)).mean()
            pairs += 1
    return total / pairs
