"""Every seed a run derives from its `--seed`, in one place: one function per random stream.

The mixes are fixed combinations. They are kept as they are because changing one changes every
seeded run (the figures in docs/ssps_robustness.md were produced with them). One function per
stream names what each seed is for; it does not make the streams provably disjoint (two streams
may meet for some counters). The collator seeds numpy from the tuple (seed, epoch, sample index) directly
(`numpy.random.default_rng` mixes a tuple itself).
"""

from __future__ import annotations


def ssps_draw(seed: int, step: int, rank: int) -> int:
    """SSPS pseudo-positive draws of one optimiser step on one process."""
    return (seed * 1_000_003 + step) * 1009 + rank


def kmeans_start(seed: int, epoch: int, stream: int) -> int:
    """Initial centroids of an epoch's clustering; stream 1 is the agreement check's second start."""
    return seed * 1_000_003 + epoch + stream * 7_919_000_001


def pool_partners(seed: int, epoch: int) -> int:
    """The partners drawn to measure an epoch's label-free pool agreement."""
    return seed + epoch


def diagnostic_start(seed: int, clustering: int) -> int:
    """The k-means starts of `bootstrap_diagnostics`: clustering 0, 1, 2."""
    return seed + clustering


def shuffle_bn(seed: int, step: int) -> int:
    """MoCo's shuffle-BN permutation of a step's global batch."""
    return seed * 7919 + step


def fill_order(seed: int, epoch: int) -> int:
    """The order of the SSPS filling pass (`ssps-fill`) for epoch S."""
    return seed * 1009 + epoch


def corpus_speaker(seed: int, speaker: int) -> int:
    """One synthetic speaker of the demo corpus."""
    return seed * 100003 + speaker
