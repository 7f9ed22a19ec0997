"""Self-Supervised Positive Sampling (SSPS): the only SSPS code of the toolkit.

Lepage & Dehak, "Self-Supervised Frameworks for Speaker Verification via Bootstrapped Positive
Sampling", IEEE/ACM TASLP 33, 2025 (arXiv 2501.17772); reference implementation
theolepage/sslsv (`sslsv/methods/_SSPS/`). Specified in docs/method.md; contract in docs/architecture.md §5.

Plain torch (no transformers / accelerate): the trainer drives it.

- `collecting(e)` / `active(e)`: pure schedule predicates (docs/method.md §4).
- `push(indices, reference, positives)`: the gathered global batch; the reference table
  (keyed by sample index) and the FIFO of pre-substitution positives (docs/method.md §3).
- `refresh(epoch)`: spherical k-means on the filled table rows + neighbour table, at the start
  of every active epoch (docs/method.md §5, §6); main process + broadcast, or replicated.
- `sample(indices, generator, reference)`: one pseudo-positive slot per local anchor, fully
  vectorised through a CSR grouping of queue slots by cluster (docs/method.md §7, §17.3). **Call it before
  `push` in a step**: the current batch is never its own candidate.
- `substitute(positives, sampled)`: a new tensor where valid anchors get the queued positive.
- `metrics(indices, sampled)`: coverage, pool size, and label rates once `set_labels` was called.

Example (the order of one active step):

```python
>>> sampled = ssps.sample(sample_index, generator)          # 1. from the stores as they are
>>> used = ssps.substitute(positives, sampled)              # 2. a new tensor
>>> loss = method.loss(out, used, ...)                      # 3.
>>> ssps.push(all_index, all_reference, all_positives)      # 4. gathered, original positives
```
"""

from __future__ import annotations

import torch
import torch.distributed as torch_dist
from torch import nn

from .kmeans import KMeansResult, neighbour_table, spherical_kmeans
from .memory import IndexedTable, RingQueue, last_occurrence
from .seeds import kmeans_start, pool_partners
from .ssps_arguments import SSPSArguments
from .ssps_diagnostics import draw_pool_partners, normalized_mutual_info, relation_holds
from .ssps_sampling import SampledPositives, sample_from_clusters, sample_nearest

__all__ = ["SSPS", "SSPSArguments", "SampledPositives"]

class SSPS(nn.Module):
    """SSPS state and algorithms; every buffer is allocated here, at construction.

    Args:
        num_samples: N, the training-set size (sample indices are in [0, N)).
        reference_dim: D_ref, the encoder output dimension.
        positive_shape: (n_pos, D_pos) of the framework's positive tensors (docs/method.md §8).
        args: `SSPSArguments`.
        device: where the stores live (the training device).
    """

    # elements of one (b, chunk) similarity block in SSPS-NN; tests lower it to force chunking
    knn_chunk_elements: int = 1 << 24

    clustered_epoch: torch.Tensor
    centroids: torch.Tensor
    assignment: torch.Tensor
    neighbours: torch.Tensor
    speaker_labels: torch.Tensor
    video_labels: torch.Tensor
    labels_set: torch.Tensor
    queue_reference: torch.Tensor

    def __init__(
        self,
        num_samples: int,
        reference_dim: int,
        positive_shape: tuple[int, int],
        args: SSPSArguments,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.args = args
        self.num_samples = num_samples
        self.reference_dim = reference_dim
        n_pos, d_pos = positive_shape
        if args.sampling == "kmeans-centroid" and (n_pos, d_pos) != (1, reference_dim):
            raise ValueError(
                "sampling='kmeans-centroid' substitutes a centroid of the encoder space, so the "
                f"positive must be one encoder-space vector: positive_shape (1, {reference_dim}), "
                f"got {positive_shape!r} (use it with SimCLR or MoCo without projector)"
            )
        if args.sampling != "knn" and args.num_clusters > num_samples:
            raise ValueError(
                f"num_clusters={args.num_clusters} exceeds the {num_samples} training samples"
            )
        dtype = getattr(torch, args.queue_dtype)
        self.queue = RingQueue(args.queue_size, (n_pos, d_pos), num_samples, dtype=dtype)
        self.register_buffer("clustered_epoch", torch.tensor(-1, dtype=torch.long))
        # label-free pool agreement of the last refresh (diagnostics only, not saved)
        self.register_buffer("agreement", torch.tensor(float("nan")), persistent=False)
        if args.sampling == "knn":
            # SSPS-NN (docs/method.md §9): the reference FIFO is aligned slot for slot with the queue
            self.register_buffer(
                "queue_reference", torch.zeros(args.queue_size, reference_dim, dtype=dtype)
            )
        else:
            self.table = IndexedTable(num_samples, reference_dim)
            k, m = args.num_clusters, args.num_candidates
            self.register_buffer("centroids", torch.zeros(k, reference_dim))
            self.register_buffer("assignment", torch.full((num_samples,), -1, dtype=torch.long))
            self.register_buffer("neighbours", torch.zeros(k, m, dtype=torch.long))
            if args.gate == "agreement":
                # the second, independently started clustering the agreement gate checks
                self.register_buffer("check_assignment", torch.full((num_samples,), -1, dtype=torch.long))
                self.register_buffer("check_neighbours", torch.zeros(k, m, dtype=torch.long))
        # diagnostics only (docs/method.md §10): not saved, filled by set_labels
        self.register_buffer(
            "speaker_labels", torch.full((num_samples,), -1, dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "video_labels", torch.full((num_samples,), -1, dtype=torch.long), persistent=False
        )
        self.register_buffer("labels_set", torch.zeros(2, dtype=torch.bool), persistent=False)
        if args.weighting == "exp":
            ranks = torch.arange(args.num_candidates, dtype=torch.float32)
            weights = args.exp_lambda * torch.exp(-args.exp_lambda * ranks)
        else:
            weights = torch.ones(args.num_candidates)
        self.register_buffer("rank_weights", weights / weights.sum(), persistent=False)
        if device is not None:
            self.to(device)

    # ------------------------------------------------------------------ schedule (docs/method.md §4)
    def collecting(self, epoch: int) -> bool:
        """Compute the reference and push: epochs >= S - 1."""
        return epoch >= self.args.start_epoch - 1

    def active(self, epoch: int) -> bool:
        """Cluster at epoch start, sample and substitute every step: epochs >= S."""
        return epoch >= self.args.start_epoch

    # ------------------------------------------------------------------ stores
    @torch.no_grad()
    def push(self, indices: torch.Tensor, reference: torch.Tensor, positives: torch.Tensor) -> None:
        """Store the gathered batch: `reference` (B, D_ref) unit-norm encoder outputs and the
        *original* (pre-substitution) `positives` (n_pos, B, D_pos), under `indices` (B,)."""
        if reference.shape != (indices.shape[0], self.reference_dim):
            raise ValueError(
                f"reference must be (B, {self.reference_dim}) for {indices.shape[0]} indices, got "
                f"{tuple(reference.shape)}"
            )
        indices = indices.to(self.queue.slot_index.device, torch.long)
        if self.args.sampling == "knn":
            slots = self.queue.push(indices, positives.detach())
            self.queue_reference[slots] = reference[-slots.shape[0] :].to(self.queue_reference.dtype)
        else:  # one duplicate resolution for both stores
            last = last_occurrence(indices)
            self.queue.push(indices, positives.detach(), last)
            self.table.write(indices, reference.detach(), last)

    def set_labels(self, speaker: torch.Tensor | None, video: torch.Tensor | None) -> None:
        """Speaker / video id per sample index (N,), for the diagnostics of docs/method.md §10 only."""
        for position, (labels, store) in enumerate(
            ((speaker, self.speaker_labels), (video, self.video_labels))
        ):
            if labels is None:
                continue
            if labels.shape != (self.num_samples,):
                raise ValueError(f"labels must have shape ({self.num_samples},), got {tuple(labels.shape)}")
            store.copy_(labels.to(store.device, torch.long))
            self.labels_set[position] = True

    def load_stores(self, state: dict[str, torch.Tensor]) -> None:
        """`load_state_dict(strict=True)`, except that the agreement gate's second clustering
        may be absent from stores that were never clustered (a filling pass or a run without
        the gate): the first refresh computes it. Anything else missing or unexpected raises."""
        own = set(self.state_dict())
        missing = own - set(state)
        optional = {"check_assignment", "check_neighbours"}
        never_clustered = "clustered_epoch" in state and int(state["clustered_epoch"]) < 0
        if missing and missing <= optional and never_clustered:
            state = {**state, **{name: getattr(self, name) for name in missing}}
        elif missing & optional:
            raise KeyError(
                f"the SSPS stores lack {sorted(missing & optional)} but were already clustered: "
                "resume with the ssps_gate they were saved with"
            )
        unexpected = set(state) - own
        if unexpected <= optional and unexpected and int(state["clustered_epoch"]) < 0:
            state = {k: v for k, v in state.items() if k not in unexpected}
        self.load_state_dict(state, strict=True)

    # ------------------------------------------------------------------ clustering (docs/method.md §5-6)
    @torch.no_grad()
    def refresh(self, epoch: int) -> dict[str, float]:
        """k-means on the filled reference rows and the neighbour table, for epoch `epoch`.

        `kmeans_mode="main"` under torch.distributed: rank 0 clusters, then broadcasts the
        assignment, centroids and neighbour table into every rank's preallocated buffers.
        `"replicated"`: every rank runs the same seeded computation. The seed is derived from
        (args.seed, epoch), so a resumed run re-clusters identically.
        """
        if self.args.sampling == "knn":
            raise RuntimeError("refresh() is for k-means sampling; SSPS-NN has no clustering")
        distributed = torch_dist.is_available() and torch_dist.is_initialized()
        is_main = not distributed or torch_dist.get_rank() == 0
        compute_here = is_main or self.args.kmeans_mode == "replicated"
        gated = self.args.gate == "agreement"
        if compute_here:
            filled_rows = torch.nonzero(self.table.filled).squeeze(1)  # once per epoch
            x = self.table.values[filled_rows].float()  # the one copy of the filled rows; normalised in place
            x /= torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(1e-12)  # = F.normalize, without a second copy
            result = self._kmeans(x, epoch, stream=0)
            self.assignment.fill_(-1)
            self.assignment[filled_rows] = result.assignment
            self.centroids.copy_(result.centroids)
            self.neighbours.copy_(neighbour_table(result.centroids, self.args.neighbour_clusters))
            if self.args.sampling == "kmeans-repr":
                # a second clustering from another start: the label-free agreement statistic
                # (ssps_trainers/ssps_diagnostics.py), and the pairs the agreement gate keeps
                check = self._kmeans(x, epoch, stream=1)
                check_neighbours = neighbour_table(check.centroids, self.args.neighbour_clusters)
                generator = torch.Generator(device=x.device).manual_seed(pool_partners(self.args.seed, epoch))
                partners = draw_pool_partners(result.assignment, self.neighbours, generator)
                anchors = torch.nonzero(partners >= 0).squeeze(1)
                agree = relation_holds(check.assignment, check_neighbours, anchors, partners[anchors])
                self.agreement.fill_(float(agree.float().mean()) if anchors.numel() else float("nan"))
                if gated:
                    self.check_assignment.fill_(-1)
                    self.check_assignment[filled_rows] = check.assignment
                    self.check_neighbours.copy_(check_neighbours)
        if distributed and self.args.kmeans_mode == "main":
            shared = [self.assignment, self.centroids, self.neighbours, self.agreement]
            if gated:
                shared += [self.check_assignment, self.check_neighbours]
            for tensor in shared:
                torch_dist.broadcast(tensor, src=0)
        self.clustered_epoch.fill_(epoch)

        in_table = self.assignment >= 0
        counts = torch.bincount(self.assignment[in_table], minlength=self.args.num_clusters)
        stats = {
            "ssps/seed_agreement": float(self.agreement),
            "ssps/clustered_rows": float(in_table.sum()),
            "ssps/empty_clusters": float((counts == 0).sum()),
            "ssps/max_cluster_size": float(counts.max()),
        }
        if self.args.log_nmi:
            for position, name in enumerate(("speaker", "video")):
                labels = (self.speaker_labels, self.video_labels)[position]
                if bool(self.labels_set[position]):
                    stats[f"ssps/nmi_{name}"] = normalized_mutual_info(
                        self.assignment[in_table], labels[in_table]
                    )
        return stats

    def _kmeans(self, x: torch.Tensor, epoch: int, stream: int) -> KMeansResult:
        """Seeded from (seed, epoch, stream): a resumed or replicated run re-clusters identically."""
        generator = torch.Generator(device=x.device)
        generator.manual_seed(kmeans_start(self.args.seed, epoch, stream))
        return spherical_kmeans(
            x, self.args.num_clusters, self.args.kmeans_iters, generator, precision=self.args.kmeans_precision
        )

    # ------------------------------------------------------------------ sampling (docs/method.md §7, §17)
    def _draw_candidates(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Rank r of the candidate each anchor uses, (b,): uniform or exp-weighted."""
        device = self.rank_weights.device
        if self.args.weighting == "uniform":
            return torch.randint(
                0, self.args.num_candidates, (batch,), generator=generator, device=device
            )
        weights = self.rank_weights[None, :].expand(batch, -1)
        return torch.multinomial(weights, 1, generator=generator).squeeze(1)

    @torch.no_grad()
    def sample(
        self,
        indices: torch.Tensor,
        generator: torch.Generator,
        reference: torch.Tensor | None = None,
    ) -> SampledPositives:
        """Draw a pseudo-positive for each local anchor `indices` (b,), from the stores as they
        are now (call before `push`). `reference` (b, D_ref), the current unit-norm references,
        is needed by `knn` only."""
        indices = indices.to(self.queue.slot_index.device, torch.long)
        if self.args.sampling == "knn" and reference is None:
            raise ValueError("sampling='knn' needs the current reference embeddings")
        rank = self._draw_candidates(indices.shape[0], generator)  # (b,) which candidate each anchor uses
        if self.args.sampling == "knn":
            return sample_nearest(indices, rank, self.args.num_candidates, reference, self.queue_reference, self.queue,
                                  self.knn_chunk_elements)  # fmt: skip
        check = (self.check_assignment, self.check_neighbours) if self.args.gate == "agreement" else None
        return sample_from_clusters(indices, rank, generator, self.assignment, self.neighbours, self.queue,
                                    centroid=self.args.sampling == "kmeans-centroid", check=check)  # fmt: skip

    # ------------------------------------------------------------------ substitution (docs/method.md §8)
    def substitute(self, positives: torch.Tensor, sampled: SampledPositives) -> torch.Tensor:
        """`positives` (n_pos, b, D_pos) with valid anchors replaced by their pseudo-positive
        (detached store content). Returns a new tensor; `positives` is not modified."""
        if self.args.sampling == "kmeans-centroid":
            candidates = self.centroids.index_select(0, sampled.slots)[None]  # (1, b, D_ref)
        else:  # index_select: 4-5x faster than advanced indexing for these row gathers on a CPU
            candidates = self.queue.values.index_select(1, sampled.slots)  # (n_pos, b, D_pos)
        candidates = candidates.to(positives.dtype)
        return torch.where(sampled.valid[None, :, None], candidates, positives)

    # ------------------------------------------------------------------ diagnostics (docs/method.md §10)
    @torch.no_grad()
    def metrics(self, indices: torch.Tensor, sampled: SampledPositives) -> dict[str, torch.Tensor]:
        """Per-step diagnostics as 0-d tensors (no host sync; reduce them when logging)."""
        valid = sampled.valid.float()
        eligible = sampled.eligible.float()
        out = {
            "ssps/coverage": valid.mean(),
            "ssps/pool_size": (sampled.pool_size.float() * eligible).sum()
            / eligible.sum().clamp(min=1.0),
        }
        if self.args.gate != "none":
            out["ssps/gate_pass_rate"] = valid.sum() / sampled.drawn.float().sum().clamp(min=1.0)
        if self.args.sampling == "kmeans-centroid":
            return out
        partner = self.queue.slot_index.index_select(0, sampled.slots).clamp(min=0)
        indices = indices.to(partner.device, torch.long)
        for position, name in enumerate(("same_speaker_rate", "same_video_rate")):
            labels = (self.speaker_labels, self.video_labels)[position]
            same = (labels.index_select(0, partner) == labels.index_select(0, indices)).float()
            rate = (same * valid).sum() / valid.sum().clamp(min=1.0)
            # NaN until set_labels provides this column, so nobody reads a fake 0
            out[f"ssps/{name}"] = torch.where(self.labels_set[position], rate, float("nan"))
        return out
