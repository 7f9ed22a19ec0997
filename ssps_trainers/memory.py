"""Training memories: a FIFO ring queue with slot<->index maps, and a table keyed by sample index.

Both are tiny `nn.Module`s whose every buffer is declared and allocated at construction, so
`state_dict()` has fixed keys and shapes, `.to(device)` moves everything, and persistence is the
one visible `persistent=` decision per buffer. Writes are batched tensor operations with no host
synchronisation. Idea of an explicit, persisted write pointer from lightly-ai/lightly
(`lightly/models/modules/memory_bank.py`); SSPS needs more (slot<->index maps, docs/method.md §17.2).

Duplicate sample indices inside one write (possible when a sampler repeats a sample) are
resolved deterministically: the *last* occurrence wins everywhere, because every write to a
row carries the values of that last occurrence.
"""

from __future__ import annotations

import torch
from torch import nn


def last_occurrence(indices: torch.Tensor) -> torch.Tensor:
    """For each position j of `indices` (B,), the position of the last equal entry (B,).

    One stable sort, O(B log B), on the device: equal entries become runs, and each run's
    largest original position is its last occurrence.
    """
    batch = indices.shape[0]
    sorted_values, order = torch.sort(indices, stable=True)
    starts_run = torch.ones(batch, dtype=torch.bool, device=indices.device)
    starts_run[1:] = sorted_values[1:] != sorted_values[:-1]
    run = torch.cumsum(starts_run.long(), 0) - 1  # run id of each sorted position
    last_in_run = torch.zeros(batch, dtype=torch.long, device=indices.device)
    last_in_run.scatter_reduce_(0, run, order, reduce="amax", include_self=False)
    out = torch.empty_like(order)
    out[order] = last_in_run[run]
    return out


class RingQueue(nn.Module):
    """FIFO of the last `capacity` pushed samples: `values` (n_pos, capacity, dim), which sample
    index sits in each slot (`slot_index`, -1 = empty), where each sample index sits
    (`index_slot`, -1 = absent) and the next write position (`pointer`).

    `push` writes at the pointer with wrap-around, clears the index->slot entries of the
    samples it overwrites (only if they still point at the overwritten slot: a sample pushed
    twice keeps its newer slot), then records the new ones.

    Example:

    ```python
    >>> queue = RingQueue(capacity=4, value_shape=(1, 2), num_samples=10)
    >>> slots = queue.push(torch.tensor([3, 7]), torch.ones(1, 2, 2))
    >>> slots.tolist(), int(queue.index_slot[7])
    ([0, 1], 1)
    ```
    """

    values: torch.Tensor
    slot_index: torch.Tensor
    index_slot: torch.Tensor
    pointer: torch.Tensor
    # write values as ring slices (reads the pointer on the host) or with index_copy_ (no host
    # read); None: slices on a CPU only. Tests force each path.
    slice_writes: bool | None = None

    def __init__(
        self,
        capacity: int,
        value_shape: tuple[int, int],
        num_samples: int,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if capacity < 1:
            raise ValueError(f"RingQueue capacity must be >= 1, got {capacity!r}")
        if num_samples < 1:
            raise ValueError(f"RingQueue num_samples must be >= 1, got {num_samples!r}")
        if len(value_shape) != 2 or min(value_shape) < 1:
            raise ValueError(f"RingQueue value_shape must be (n_pos, dim) >= 1, got {value_shape!r}")
        self.capacity = capacity
        self.num_samples = num_samples
        n_pos, dim = value_shape
        self.register_buffer("values", torch.zeros(n_pos, capacity, dim, dtype=dtype))
        self.register_buffer("slot_index", torch.full((capacity,), -1, dtype=torch.long))
        self.register_buffer("index_slot", torch.full((num_samples,), -1, dtype=torch.long))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @property
    def filled(self) -> torch.Tensor:
        """(capacity,) bool: slots holding a sample."""
        return self.slot_index >= 0

    def current(self) -> torch.Tensor:
        """(capacity,) bool: filled slots that hold the most recent entry of their sample."""
        filled = self.filled
        owner = self.index_slot[self.slot_index.clamp(min=0)]
        slots = torch.arange(self.capacity, device=owner.device)
        return filled & (owner == slots)

    @torch.no_grad()
    def push(self, indices: torch.Tensor, values: torch.Tensor, last: torch.Tensor | None = None) -> torch.Tensor:
        """Enqueue samples `indices` (B,) with `values` (n_pos, B, dim); returns their slots.

        When B > capacity only the last `capacity` samples are kept (the pointer still advances
        by B, as if all had been written in order). `last`: `last_occurrence(indices)` if the
        caller already has it (SSPS writes the same indices to its table).
        """
        if indices.ndim != 1 or values.shape[1] != indices.shape[0]:
            raise ValueError(
                f"push needs indices (B,) and values (n_pos, B, dim); got {tuple(indices.shape)} "
                f"and {tuple(values.shape)}"
            )
        if values.shape[0] != self.values.shape[0] or values.shape[2] != self.values.shape[2]:
            raise ValueError(
                f"values {tuple(values.shape)} do not match the queue's (n_pos, B, dim) = "
                f"({self.values.shape[0]}, B, {self.values.shape[2]})"
            )
        batch = indices.shape[0]
        if batch > self.capacity:
            skipped = batch - self.capacity
            self.pointer.add_(skipped).remainder_(self.capacity)
            indices, values = indices[skipped:], values[:, skipped:]
            batch, last = self.capacity, None
        indices = indices.to(self.slot_index.device, torch.long)
        slots = (self.pointer + torch.arange(batch, device=indices.device)) % self.capacity

        # 1. forget overwritten samples, only where the map still points at the slot
        # (index_select / index_copy_ throughout: several times faster than [] on a CPU)
        old = self.slot_index.index_select(0, slots)
        old_safe = old.clamp(min=0)
        stale = (old >= 0) & (self.index_slot.index_select(0, old_safe) == slots)
        # at most one overwritten slot matches a given sample, so summing deltas is exact
        self.index_slot.index_add_(0, old_safe, torch.where(stale, -1 - slots, 0))
        # 2. write the slots, in place (slots are distinct)
        self.slot_index.index_copy_(0, slots, indices)
        values = values.to(self.values.dtype)
        slice_writes = self.values.device.type == "cpu" if self.slice_writes is None else self.slice_writes
        if slice_writes:
            # the slots are one ring range, at most two slices: plain copies
            start = int(self.pointer)
            head = min(batch, self.capacity - start)
            self.values[:, start : start + head].copy_(values[:, :head])
            self.values[:, : batch - head].copy_(values[:, head:])
        else:  # no host read of the pointer on an accelerator
            self.values.index_copy_(1, slots, values)
        # 3. point each sample at its (last) new slot
        self.index_slot.index_copy_(0, indices, slots.index_select(0, last_occurrence(indices) if last is None else last))
        self.pointer.add_(batch).remainder_(self.capacity)
        return slots

    def extra_repr(self) -> str:
        n_pos, _, dim = self.values.shape
        return f"capacity={self.capacity}, n_pos={n_pos}, dim={dim}, num_samples={self.num_samples}"


class IndexedTable(nn.Module):
    """Rows keyed by sample index: `values` (num_rows, dim) and a `filled` mask (num_rows,).

    The SSPS reference table Q-hat: the last reference embedding written for each utterance.
    """

    values: torch.Tensor
    filled: torch.Tensor

    def __init__(self, num_rows: int, dim: int, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if num_rows < 1 or dim < 1:
            raise ValueError(f"IndexedTable needs num_rows, dim >= 1, got {num_rows!r}, {dim!r}")
        self.register_buffer("values", torch.zeros(num_rows, dim, dtype=dtype))
        self.register_buffer("filled", torch.zeros(num_rows, dtype=torch.bool))

    @torch.no_grad()
    def write(self, indices: torch.Tensor, values: torch.Tensor, last: torch.Tensor | None = None) -> None:
        """Set rows `indices` (B,) to `values` (B, dim) and mark them filled. `last`:
        `last_occurrence(indices)` if the caller already has it."""
        if indices.ndim != 1 or values.shape != (indices.shape[0], self.values.shape[1]):
            raise ValueError(
                f"write needs indices (B,) and values (B, {self.values.shape[1]}); got "
                f"{tuple(indices.shape)} and {tuple(values.shape)}"
            )
        indices = indices.to(self.values.device, torch.long)
        # duplicates carry the same row, so the order index_copy_ writes them in does not matter
        last = last_occurrence(indices) if last is None else last
        rows = values.index_select(0, last).to(self.values.dtype)
        self.values.index_copy_(0, indices, rows)
        self.filled.index_fill_(0, indices, True)

    def extra_repr(self) -> str:
        return f"num_rows={self.values.shape[0]}, dim={self.values.shape[1]}"


class Center(nn.Module):
    """DINO centre: an EMA of the mean teacher logits, `center <- m center + (1 - m) mean(T)`
    (Caron et al., 2021; lightly-ai/lightly `center.py`). Updated by the trainer with the
    gathered (and, under SSPS, substituted) teacher outputs, never inside `forward`."""

    center: torch.Tensor

    def __init__(self, dim: int, momentum: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Center momentum must be in [0, 1), got {momentum!r}")
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(dim))

    @torch.no_grad()
    def update(self, teacher_logits: torch.Tensor) -> None:
        """teacher_logits (..., dim): every global row of the step, all processes."""
        batch_mean = teacher_logits.reshape(-1, self.center.shape[0]).float().mean(dim=0)
        self.center.mul_(self.momentum).add_(batch_mean, alpha=1.0 - self.momentum)


class FeatureQueue(nn.Module):
    """FIFO of the last `capacity` feature rows (n_views, capacity, dim) for the MoCo negative
    queues and the SwAV feature queue, with an explicit pointer and a fill count."""

    values: torch.Tensor
    pointer: torch.Tensor
    count: torch.Tensor

    def __init__(self, capacity: int, num_views: int, dim: int) -> None:
        super().__init__()
        if capacity < 1:
            raise ValueError(f"FeatureQueue capacity must be >= 1, got {capacity!r}")
        self.capacity = capacity
        self.register_buffer("values", torch.zeros(num_views, capacity, dim))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, features: torch.Tensor) -> None:
        """Enqueue (n_views, B, dim), wrapping around; B > capacity keeps the last rows.

        Out of place: the step's loss still holds the previous tensor for its backward (MoCo
        negatives), so the new contents go into a new tensor rather than over the saved one.
        """
        features = features[:, -self.capacity :]
        batch = features.shape[1]
        slots = (self.pointer + torch.arange(batch, device=self.values.device)) % self.capacity
        self.values = self.values.index_copy(1, slots, features.to(self.values.dtype))
        self.pointer.add_(batch).remainder_(self.capacity)
        self.count.add_(batch).clamp_(max=self.capacity)
