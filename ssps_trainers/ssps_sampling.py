"""The two ways SSPS draws a pseudo-positive for a batch of anchors, as functions of the stores.

- `sample_from_clusters`: the paper's SSPS (docs/method.md §7): a candidate cluster per anchor,
  then a uniform member of that cluster in the queue, all anchors at once through a CSR grouping
  of the queue by cluster (§17.3); optionally checked by the agreement gate.
- `sample_nearest`: SSPS-NN (§9, §17.6): the k most similar queued references, chunked.

Both are pure: they read the stores and return a `SampledPositives`; `ssps.SSPS.sample` owns
the stores and the random rank each anchor uses.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .memory import RingQueue
from .ssps_diagnostics import relation_holds


class SampledPositives(NamedTuple):
    """One draw per local anchor (all (b,)).

    slots: queue slot of the pseudo-positive (`kmeans-repr`, `knn`), or the chosen cluster
        (`kmeans-centroid`). Meaningful only where `valid`.
    valid: the anchor received a pseudo-positive; elsewhere it keeps its own positive.
    eligible: the anchor had a candidate list (in the table / a non-empty queue).
    pool_size: number of candidates the draw was made from (0 where not eligible).
    drawn: a partner was drawn (valid before the gate; equals `valid` without a gate).
    """

    slots: torch.Tensor
    valid: torch.Tensor
    eligible: torch.Tensor
    pool_size: torch.Tensor
    drawn: torch.Tensor


def sample_from_clusters(
    indices: torch.Tensor,
    rank: torch.Tensor,
    generator: torch.Generator,
    assignment: torch.Tensor,
    neighbours: torch.Tensor,
    queue: RingQueue,
    centroid: bool = False,
    check: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> SampledPositives:
    """Anchors `indices` (b,) use candidate cluster `neighbours[assignment[i], rank[i]]`.

    `centroid`: return that cluster (kmeans-centroid substitutes its centroid). Otherwise draw a
    uniform member among the queue's current entries of clustered samples (not the anchor
    itself). `check` = (assignment, neighbours) of a second clustering: keep only the pairs it
    relates too (the agreement gate, docs/method.md §7).
    """
    batch, num_clusters = indices.shape[0], neighbours.shape[0]
    # 1-D index_select rather than [] throughout: several times faster for small gathers on a CPU
    cluster = assignment.index_select(0, indices)  # (b,) -1: not clustered this epoch
    eligible = cluster >= 0
    num_candidates = neighbours.shape[1]
    chosen = neighbours.reshape(-1).index_select(0, cluster.clamp(min=0) * num_candidates + rank)  # (b,) c*
    if centroid:
        pool = torch.ones_like(chosen)
        return SampledPositives(chosen, eligible, eligible, torch.where(eligible, pool, 0), eligible)

    # CSR grouping of the queue by cluster (docs/method.md §17.3): candidates are the current entry
    # of each queued sample that is clustered; all others go to an extra bucket K.
    order, counts = group_by_cluster(queue, assignment, chosen, num_clusters, only_chosen=indices.device.type == "cpu")
    starts = torch.cumsum(counts, 0) - counts  # exclusive cumsum

    count = counts.index_select(0, chosen)  # (b,)
    uniform = torch.rand(batch, generator=generator, device=indices.device)
    offset = torch.minimum((uniform * count).long(), (count - 1).clamp(min=0))
    position = (starts.index_select(0, chosen) + offset).clamp(max=order.shape[0] - 1)
    slots = order.index_select(0, position)
    partner = queue.slot_index.index_select(0, slots)
    drawn = eligible & (count > 0) & (partner != indices)
    valid = drawn
    if check is not None:  # keep the pairs the second clustering also relates
        check_assignment, check_neighbours = check
        partner = partner.clamp(min=0)
        checked = (check_assignment.index_select(0, indices) >= 0) & (check_assignment.index_select(0, partner) >= 0)
        valid = drawn & checked & relation_holds(check_assignment, check_neighbours, indices, partner)
    return SampledPositives(slots, valid, eligible, torch.where(eligible, count, 0), drawn)


def group_by_cluster(
    queue: RingQueue, assignment: torch.Tensor, chosen: torch.Tensor, num_clusters: int, only_chosen: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR grouping of the queue's candidate slots by cluster: `order` lists them cluster by
    cluster (slot order within a cluster) and `counts` (K,) how many each cluster has, for the
    clusters in `chosen`. A candidate is a slot holding the current entry of a clustered sample.

    `only_chosen=False` groups the whole queue (one stable sort of P keys, no host sync: the GPU
    path). `only_chosen=True` first keeps the slots whose cluster some anchor chose (about b of
    them), checks only those for currency, then sorts them: the same `order` restricted to the
    chosen clusters, the same counts for them and so the same draws, without sorting P keys on
    a CPU (1.8 ms at P = 25,000 here). `nonzero` waits for the device, so this path is for
    CPUs. `order` is never empty."""
    owner = queue.slot_index.clamp(min=0)  # (P,) sample of each slot (0 for empty slots)
    owner_cluster = assignment.index_select(0, owner)  # -1: not clustered this epoch
    if only_chosen:
        wanted = torch.zeros(num_clusters + 1, dtype=torch.bool, device=chosen.device)
        wanted.index_fill_(0, chosen, True)  # wanted[K] stays False: unclustered owners drop out
        bucket = torch.where(owner_cluster >= 0, owner_cluster, num_clusters)
        slots = torch.nonzero(wanted.index_select(0, bucket)).squeeze(1)  # in slot order
        owned = owner.index_select(0, slots)
        current = (queue.slot_index.index_select(0, slots) >= 0) & (queue.index_slot.index_select(0, owned) == slots)
        slots = slots[current]
        member_cluster = owner_cluster.index_select(0, slots)
        order = slots.index_select(0, torch.argsort(member_cluster, stable=True))
        counts = torch.bincount(member_cluster, minlength=num_clusters)
    else:
        usable = queue.current() & (owner_cluster >= 0)
        bucket = torch.where(usable, owner_cluster, num_clusters)  # (P,) K: not a candidate
        order = torch.argsort(bucket, stable=True)
        counts = torch.bincount(bucket, minlength=num_clusters + 1)[:num_clusters]
    if order.numel() == 0:  # no candidate anywhere: every count is 0, any valid position will do
        order = torch.zeros(1, dtype=torch.long, device=chosen.device)
    return order, counts


def sample_nearest(
    indices: torch.Tensor,
    rank: torch.Tensor,
    num_candidates: int,
    reference: torch.Tensor,
    queue_reference: torch.Tensor,
    queue: RingQueue,
    chunk_elements: int = 1 << 24,
) -> SampledPositives:
    """SSPS-NN: cosine of the current `reference` (b, D_ref) to every queued reference (in chunks
    of about `chunk_elements` scores), empty and same-index entries masked, running top-k with
    k = `num_candidates`; anchor i takes its `rank[i]`-th nearest."""
    k = num_candidates
    batch, capacity = indices.shape[0], queue.capacity
    query = F.normalize(reference.float(), dim=1)  # (b, D_ref)
    best_values = torch.full((batch, k), float("-inf"), device=query.device)
    best_slots = torch.zeros(batch, k, dtype=torch.long, device=query.device)
    chunk = max(k, chunk_elements // max(batch, 1))
    for start in range(0, capacity, chunk):
        stop = min(start + chunk, capacity)
        keys = queue_reference[start:stop].float()  # (chunk, D_ref)
        similarity = query @ keys.T  # (b, chunk)
        owners = queue.slot_index[start:stop]
        blocked = (owners[None, :] < 0) | (owners[None, :] == indices[:, None])
        similarity = similarity.masked_fill(blocked, float("-inf"))
        # top-k of the chunk first, then merge with the running top-k: (b, 2k) per chunk
        # instead of concatenating the whole (b, chunk) block and its slot numbers
        chunk_values, chunk_top = similarity.topk(min(k, stop - start), dim=1)
        values = torch.cat([best_values, chunk_values], dim=1)
        candidates = torch.cat([best_slots, chunk_top + start], dim=1)
        best_values, top = values.topk(k, dim=1)
        best_slots = candidates.gather(1, top)
    finite = torch.isfinite(best_values)
    picked = best_slots.gather(1, rank[:, None]).squeeze(1)
    valid = finite.gather(1, rank[:, None]).squeeze(1)
    eligible = finite.any(dim=1)
    return SampledPositives(picked, valid, eligible, finite.sum(dim=1), valid)
