"""RingQueue and IndexedTable against a slow, obviously-correct Python oracle."""

import pytest
import torch

from ssps_trainers.memory import IndexedTable, RingQueue, last_occurrence


class QueueOracle:
    """Pushes one sample at a time, with Python lists and a dict."""

    def __init__(self, capacity: int, num_samples: int, n_pos: int, dim: int) -> None:
        self.capacity = capacity
        self.slot_index = [-1] * capacity
        self.index_slot: dict[int, int] = {}
        self.values = torch.zeros(n_pos, capacity, dim)
        self.pointer = 0
        self.num_samples = num_samples

    def push(self, indices: list[int], values: torch.Tensor) -> None:
        for j, index in enumerate(indices):
            slot = self.pointer
            old = self.slot_index[slot]
            if old >= 0 and self.index_slot.get(old) == slot:
                del self.index_slot[old]
            self.slot_index[slot] = index
            self.index_slot[index] = slot
            self.values[:, slot] = values[:, j]
            self.pointer = (self.pointer + 1) % self.capacity

    def index_slot_tensor(self) -> torch.Tensor:
        out = torch.full((self.num_samples,), -1, dtype=torch.long)
        for index, slot in self.index_slot.items():
            out[index] = slot
        return out


@pytest.mark.parametrize("slice_writes", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_ring_queue_matches_oracle(seed: int, slice_writes: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    capacity, num_samples, n_pos, dim = 7, 20, 2, 3
    queue = RingQueue(capacity, (n_pos, dim), num_samples)
    queue.slice_writes = slice_writes  # the CPU path and the accelerator path
    oracle = QueueOracle(capacity, num_samples, n_pos, dim)
    for _ in range(15):
        batch = int(torch.randint(1, 11, (1,), generator=g))  # includes B > capacity
        if seed % 2:
            indices = torch.randint(0, num_samples, (batch,), generator=g)  # duplicates
        else:
            indices = torch.randperm(num_samples, generator=g)[:batch]
        values = torch.randn(n_pos, batch, dim, generator=g)
        slots = queue.push(indices, values)
        oracle.push(indices.tolist(), values)
        assert queue.slot_index.tolist() == oracle.slot_index
        assert int(queue.pointer) == oracle.pointer
        torch.testing.assert_close(queue.values, oracle.values, rtol=0, atol=0)
        assert torch.equal(queue.index_slot, oracle.index_slot_tensor())
        assert torch.equal(queue.slot_index[slots], indices[-slots.shape[0] :])


def test_wrap_around_and_current_entries() -> None:
    queue = RingQueue(4, (1, 1), 10)
    queue.push(torch.tensor([1, 2, 3]), torch.ones(1, 3, 1))
    queue.push(torch.tensor([1, 5]), 2 * torch.ones(1, 2, 1))  # 1 again; wraps to slot 0
    assert queue.slot_index.tolist() == [5, 2, 3, 1]
    assert int(queue.pointer) == 1
    assert queue.index_slot[[1, 2, 3, 5]].tolist() == [3, 1, 2, 0]
    assert queue.current().tolist() == [True, True, True, True]
    queue.push(torch.tensor([2]), torch.ones(1, 1, 1))  # 2 now at slot 1 again
    queue.push(torch.tensor([7]), torch.ones(1, 1, 1))  # overwrites slot 2 (sample 3)
    assert int(queue.index_slot[3]) == -1
    assert queue.filled.all()


def test_old_duplicate_slot_does_not_clear_newer_entry() -> None:
    queue = RingQueue(3, (1, 1), 10)
    queue.push(torch.tensor([4, 5]), torch.zeros(1, 2, 1))  # 4 at slot 0
    queue.push(torch.tensor([4]), torch.zeros(1, 1, 1))  # 4 at slot 2
    assert queue.current().tolist() == [False, True, True]
    queue.push(torch.tensor([6]), torch.zeros(1, 1, 1))  # overwrites slot 0 (old copy of 4)
    assert int(queue.index_slot[4]) == 2


def test_last_occurrence() -> None:
    assert last_occurrence(torch.tensor([3, 1, 3, 2, 1])).tolist() == [2, 4, 2, 3, 4]


def test_indexed_table_last_write_wins() -> None:
    table = IndexedTable(6, 2)
    table.write(torch.tensor([1, 4, 1]), torch.tensor([[1.0, 1.0], [4.0, 4.0], [9.0, 9.0]]))
    assert table.filled.tolist() == [False, True, False, False, True, False]
    assert table.values[1].tolist() == [9.0, 9.0]
    assert table.values[4].tolist() == [4.0, 4.0]


def test_shared_last_occurrence_gives_the_same_stores() -> None:
    """SSPS.push resolves duplicates once for the queue and the table: same result as each alone."""
    g = torch.Generator().manual_seed(3)
    own, shared = (RingQueue(5, (1, 2), 9), IndexedTable(9, 2)), (RingQueue(5, (1, 2), 9), IndexedTable(9, 2))
    for batch in (4, 3, 8, 2):  # 8 > capacity: the queue recomputes it for the rows it keeps
        indices = torch.randint(0, 9, (batch,), generator=g)
        values = torch.randn(1, batch, 2, generator=g)
        own[0].push(indices, values)
        own[1].write(indices, values[0])
        last = last_occurrence(indices)
        shared[0].push(indices, values, last)
        shared[1].write(indices, values[0], last)
        for a, b in zip(own, shared):
            for key, value in a.state_dict().items():
                assert torch.equal(value, b.state_dict()[key]), key


def test_state_dict_round_trip_is_strict() -> None:
    queue = RingQueue(5, (2, 3), 9)
    queue.push(torch.tensor([1, 2, 3]), torch.randn(2, 3, 3))
    copy = RingQueue(5, (2, 3), 9)
    copy.load_state_dict(queue.state_dict(), strict=True)
    for key, value in queue.state_dict().items():
        assert torch.equal(value, copy.state_dict()[key]), key
    with pytest.raises(RuntimeError):
        RingQueue(6, (2, 3), 9).load_state_dict(queue.state_dict(), strict=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"capacity": 0, "value_shape": (1, 2), "num_samples": 3}, "capacity"),
        ({"capacity": 2, "value_shape": (0, 2), "num_samples": 3}, "value_shape"),
        ({"capacity": 2, "value_shape": (1, 2), "num_samples": 0}, "num_samples"),
    ],
)
def test_bad_construction(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        RingQueue(**kwargs)


def test_push_shape_errors() -> None:
    queue = RingQueue(4, (2, 3), 10)
    with pytest.raises(ValueError, match="n_pos"):
        queue.push(torch.tensor([1]), torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match="indices"):
        queue.push(torch.tensor([1, 2]), torch.zeros(2, 1, 3))
