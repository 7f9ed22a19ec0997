"""SSPS speed: per-step sample + substitute + push at paper scale, and k-means vs faiss-cpu.

    python benchmarks/bench_ssps.py [--repeats 5] [--skip_paper_scale] [--skip_dino] [--skip_refresh]
                                    [--skip_kmeans] [--refresh_fraction F] [--quick] [--json out.json]

SSPS-NN rows: our chunked draw over a full 1M queue vs the bare similarity matmul (its floor).
Step rows: our vectorised SSPS (CSR grouping, docs/method.md §17.3) vs a per-anchor loop that does
the reference implementation's per-anchor work (sslsv's k-means sampler: per anchor, draw a nearby
cluster, select that cluster's queue entries, draw one, compare its labels, find its queue
position; Python loop over samples), and a leaner loop, on the same state. Paper scale:
N = 1,092,009 utterances, K = 25,000 clusters, queue P = 25,000, M = 1; SimCLR B = 256 (1 x 512
positives), DINO B = 128 (2 x 4,096 and 2 x 65,536 positives; the 65,536-d queue in float16 as the
DINO recipes store it). Refresh row: one epoch-start clustering pass over a full table vs its GEMM
floor, at the paper's N and K or a stated fraction of both. k-means rows: ours vs faiss-cpu
`Kmeans(spherical=True)` at equal
iterations on the same data. Medians over --repeats; not run in CI.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from ssps_trainers.kmeans import spherical_kmeans
from ssps_trainers.ssps import SSPS, SSPSArguments

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--loop_repeats", type=int, default=2)
parser.add_argument("--skip_paper_scale", action="store_true")
parser.add_argument("--skip_dino", action="store_true")
parser.add_argument("--json", type=str, default=None)
parser.add_argument("--quick", action="store_true", help="Small rows only, no paper scale (a check that the script runs).")
parser.add_argument("--refresh_fraction", type=float, default=None,
                    help="Refresh row at this fraction of the paper's N = 1,092,009 and K = 25,000 (both scaled, so "
                         "rows per cluster stay the paper's): default 1.0 on CUDA, 0.1 on CPU (1/100 of the work).")
parser.add_argument("--skip_refresh", action="store_true")
parser.add_argument("--skip_kmeans", action="store_true", help="No k-means vs faiss-cpu rows.")
args = parser.parse_args()
if args.quick:
    args.skip_paper_scale = True
device = "cuda" if torch.cuda.is_available() else "cpu"


def sync() -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def reset_peak() -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float:
    """CUDA: max allocated since the last reset_peak(). CPU: the process's peak RSS so far (it only
    grows, so a row's value includes everything before it; the rows run in the printed order)."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reference_loop_step(ssps: SSPS, nearby: list[list[int]], indices: torch.Tensor, positives: torch.Tensor,
                        generator: torch.Generator) -> torch.Tensor:
    """The per-anchor work of the reference sampler (sslsv `SSPS_KMeansReprSampling.sample`, then
    `_determine_metrics`, `_find_train_indices_in_queue` and `apply`), written here as a loop over
    anchors with the same steps: per anchor, draw a nearby cluster from its precomputed list, select
    the queue entries of that cluster (cluster ids of the queue looked up for every anchor), draw
    one, compare its speaker and video labels, find its queue position; then substitute.
    Label look-ups use tensors here (the reference reads a pandas frame, which is slower)."""
    queue_indices = ssps.queue.slot_index  # train index of each queue entry
    chosen = torch.full_like(indices, -1)
    speaker = video = 0
    for i, idx in enumerate(indices.tolist()):
        cluster = int(ssps.assignment[idx])
        if cluster == -1 or not nearby[cluster]:
            continue
        uniform = torch.ones(len(nearby[cluster])) / len(nearby[cluster])
        selected = nearby[cluster][int(torch.multinomial(uniform, 1, generator=generator))]
        members = queue_indices[ssps.assignment[queue_indices.clamp(min=0)] == selected]
        members = members[members >= 0]
        if members.numel() == 0:
            continue
        uniform = torch.ones(members.numel()) / members.numel()
        chosen[i] = members[int(torch.multinomial(uniform, 1, generator=generator))]
        speaker += int(ssps.speaker_labels[int(chosen[i])] == ssps.speaker_labels[idx])
        video += int(ssps.video_labels[int(chosen[i])] == ssps.video_labels[idx])
    slots = torch.full_like(indices, -1)
    for i, idx in enumerate(chosen.tolist()):
        if idx == -1:
            continue
        matches = torch.nonzero(queue_indices == idx).view(-1)
        if matches.numel():
            slots[i] = matches[-1]
    out = positives.clone()
    valid = slots >= 0
    out[:, valid] = ssps.queue.values[:, slots[valid]].to(out.dtype)
    return out


def precomputed_loop_sample(ssps: SSPS, indices: torch.Tensor, generator: torch.Generator):
    """A leaner per-anchor loop: the queue's cluster ids computed once per step (not per anchor),
    no label metrics, no position look-up. Kept to show how much of the gap is the loop itself."""
    queue_clusters = ssps.assignment[ssps.queue.slot_index.clamp(min=0)]
    queue_clusters = torch.where(ssps.queue.slot_index >= 0, queue_clusters, -1)
    slots, valid = [], []
    for i in indices.tolist():
        c = int(ssps.assignment[i])
        if c < 0:
            slots.append(0), valid.append(False)
            continue
        r = int(torch.randint(0, ssps.neighbours.shape[1], (1,), generator=generator))
        target = int(ssps.neighbours[c, r])
        pool = torch.nonzero(queue_clusters == target).squeeze(1)
        if pool.numel() == 0:
            slots.append(0), valid.append(False)
            continue
        slot = int(pool[int(torch.randint(0, pool.numel(), (1,), generator=generator))])
        slots.append(slot)
        valid.append(int(ssps.queue.slot_index[slot]) != i)
    return torch.tensor(slots), torch.tensor(valid)


def step_rows(name: str, num_samples: int, clusters: int, batch: int, n_pos: int, d_pos: int,
              queue_dtype: str = "float32"):
    reset_peak()
    ssps_args = SSPSArguments(start_epoch=1, num_clusters=clusters, queue_size=clusters, neighbour_clusters=1,
                              queue_dtype=queue_dtype)  # fmt: skip
    ssps = SSPS(num_samples, 512, (n_pos, d_pos), ssps_args, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    ssps.set_labels(torch.arange(num_samples, device=device) // 200, torch.arange(num_samples, device=device) // 20)
    # a full table and queue, and a clustering (random assignment: timing does not depend on it)
    for start in range(0, num_samples, 65536):
        rows = torch.arange(start, min(start + 65536, num_samples), device=device)
        ssps.table.write(rows, F.normalize(torch.randn(rows.numel(), 512, device=device, generator=g), dim=1))
    ssps.assignment.copy_(torch.randint(0, clusters, (num_samples,), device=device, generator=g))
    ssps.neighbours.copy_(torch.randint(0, clusters, (clusters, 1), device=device, generator=g))
    nearby = ssps.neighbours.tolist()  # the reference's cluster -> nearby clusters lists (built at refresh)
    for start in range(0, clusters, 4096):
        chunk = torch.arange(start, min(start + 4096, clusters), device=device)
        ssps.queue.push(chunk * 7, torch.randn(n_pos, chunk.numel(), d_pos, device=device, generator=g))

    indices = torch.randperm(num_samples, device=device, generator=g)[:batch]
    reference = F.normalize(torch.randn(batch, 512, device=device, generator=g), dim=1)
    positives = torch.randn(n_pos, batch, d_pos, device=device, generator=g)

    def ours() -> None:
        sampled = ssps.sample(indices, g)
        used = ssps.substitute(positives, sampled)
        ssps.metrics(indices, sampled)
        ssps.push(indices, reference, positives)
        del used

    def loop() -> None:
        reference_loop_step(ssps, nearby, indices, positives, g)
        ssps.push(indices, reference, positives)

    def lean_loop() -> None:
        slots, valid = precomputed_loop_sample(ssps, indices, g)
        candidates = ssps.queue.values[:, slots.to(device)].to(positives.dtype)
        torch.where(valid.to(device)[None, :, None], candidates, positives)
        ssps.push(indices, reference, positives)

    ours()  # warm-up
    t_ours = median_time(ours, args.repeats)
    m_ours = peak_gib()
    t_loop = median_time(loop, args.loop_repeats)
    m_loop = peak_gib()
    t_lean = median_time(lean_loop, args.loop_repeats)
    bench = f"SSPS step, {name}" + (f", {queue_dtype} queue" if queue_dtype != "float32" else "")
    return [
        {"bench": bench, "impl": "ours (vectorised)", "seconds": t_ours, "peak_gib": m_ours},
        {"bench": bench, "impl": "per-anchor loop (reference's per-anchor work)", "seconds": t_loop, "peak_gib": m_loop},
        {"bench": bench, "impl": "leaner loop (queue clusters once per step)", "seconds": t_lean, "peak_gib": peak_gib()},
    ]


def knn_rows(name: str, queue_size: int, batch: int, knn_k: int = 10):
    """SSPS-NN draw over a full queue of `queue_size` references vs its GEMM floor: the (b, P)
    similarity matmul alone, which any exact nearest-neighbour draw must do."""
    reset_peak()
    ssps_args = SSPSArguments(start_epoch=1, sampling="knn", knn_k=knn_k, queue_size=queue_size)
    ssps = SSPS(queue_size + batch, 512, (1, 512), ssps_args, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    for start in range(0, queue_size, 65536):
        index = torch.arange(start, min(start + 65536, queue_size), device=device)
        values = F.normalize(torch.randn(index.numel(), 512, device=device, generator=g), dim=1)
        ssps.push(index, values, values[None])
    indices = torch.arange(queue_size, queue_size + batch, device=device)
    reference = F.normalize(torch.randn(batch, 512, device=device, generator=g), dim=1)
    keys = ssps.queue_reference

    def ours() -> None:
        ssps.sample(indices, g, reference)

    def floor() -> None:
        for start in range(0, queue_size, 1 << 17):  # chunked like ours, so both stay cache-friendly
            reference @ keys[start : start + (1 << 17)].T

    ours()
    t_ours = median_time(ours, args.repeats)
    m_ours = peak_gib()
    t_floor = median_time(floor, args.repeats)
    return [
        {"bench": f"SSPS-NN draw, {name}", "impl": f"ours (chunked top-{knn_k} + merge)", "seconds": t_ours, "peak_gib": m_ours},
        {"bench": f"SSPS-NN draw, {name}", "impl": "GEMM floor (similarities only)", "seconds": t_floor, "peak_gib": peak_gib()},
    ]


def refresh_rows(num_samples: int, clusters: int, repeats: int):
    """One epoch-start refresh (docs/method.md §5-6) over a full table: the k-means, its neighbour
    table and the second, independently started clustering that gives the label-free agreement,
    at the default precision (`auto`). Floor: the fp32 similarity matmuls alone, 2 clusterings x
    (iterations + 1) E-steps of X @ C^T, which any exact Lloyd refresh must do."""
    reset_peak()
    ssps_args = SSPSArguments(start_epoch=1, num_clusters=clusters, queue_size=clusters, neighbour_clusters=1)
    ssps = SSPS(num_samples, 512, (1, 512), ssps_args, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    centres = F.normalize(torch.randn(max(clusters // 4, 1), 512, device=device, generator=g), dim=1)
    for start in range(0, num_samples, 65536):
        rows = torch.arange(start, min(start + 65536, num_samples), device=device)
        pick = torch.randint(0, centres.shape[0], (rows.numel(),), device=device, generator=g)
        noise = torch.randn(rows.numel(), 512, device=device, generator=g) / 512**0.5
        ssps.table.write(rows, F.normalize(centres[pick] + 0.5 * noise, dim=1))
    x = ssps.table.values
    c = x[:clusters].clone()

    def floor() -> None:
        for _ in range(2 * (ssps_args.kmeans_iters + 1)):
            for start in range(0, num_samples, 1 << 16):
                x[start : start + (1 << 16)] @ c.T

    ssps.refresh(1)  # warm-up
    t_ours = median_time(lambda: ssps.refresh(1), repeats)
    m_ours = peak_gib()
    t_floor = median_time(floor, repeats)
    bench = f"refresh N={num_samples:,} K={clusters:,} D=512 it={ssps_args.kmeans_iters}, 2 clusterings"
    return [
        {"bench": bench, "impl": "ours (k-means auto precision + neighbour table + agreement)", "seconds": t_ours, "peak_gib": m_ours},
        {"bench": bench, "impl": "GEMM floor (fp32 X @ C^T of every E-step)", "seconds": t_floor, "peak_gib": peak_gib()},
    ]


def kmeans_rows(n: int, k: int, d: int, iters: int = 10):
    reset_peak()
    g = torch.Generator().manual_seed(0)
    # clustered data: k/4 true centres with noise, unit norm
    centres = F.normalize(torch.randn(max(k // 4, 1), d, generator=g), dim=1)
    x = F.normalize(centres[torch.randint(0, centres.shape[0], (n,), generator=g)]
                    + 0.5 * torch.randn(n, d, generator=g) / d**0.5, dim=1)  # fmt: skip
    rows = []
    xd = x.to(device)
    t_ours = median_time(
        lambda: spherical_kmeans(xd, k, iters, torch.Generator(device=device).manual_seed(1)),
        max(1, args.repeats // 2),
    )
    rows.append({"bench": f"k-means N={n} K={k} D={d} it={iters}", "impl": "ours (torch, fp32)", "seconds": t_ours, "peak_gib": peak_gib()})
    fp32 = spherical_kmeans(xd, k, iters, torch.Generator(device=device).manual_seed(1))
    # same init for every variant: agreement of the final assignments with the fp32 E-step
    for precision, label in (("certified", "certified: bf16 screen, fp32 for undecided rows"), ("bfloat16", "bf16 E-step")):
        other = spherical_kmeans(xd, k, iters, torch.Generator(device=device).manual_seed(1), precision=precision)
        agreement = float((fp32.assignment == other.assignment).float().mean())
        seconds = median_time(
            lambda: spherical_kmeans(xd, k, iters, torch.Generator(device=device).manual_seed(1), precision=precision),
            max(1, args.repeats // 2),
        )
        rows.append({"bench": f"k-means N={n} K={k} D={d} it={iters}",
                     "impl": f"ours ({label}; {100 * agreement:.2f}% same assignments as fp32)",
                     "seconds": seconds, "peak_gib": peak_gib()})  # fmt: skip
    try:
        import faiss
    except ImportError:
        return rows
    xn = x.numpy()

    def run_faiss() -> None:
        km = faiss.Kmeans(d, k, niter=iters, spherical=True, seed=1, verbose=False,
                          min_points_per_centroid=1, max_points_per_centroid=10**9)  # fmt: skip
        km.train(xn)
        km.index.search(xn, 1)  # the final assignment, as ours returns

    t_faiss = median_time(run_faiss, max(1, args.repeats // 2))
    rows.append({"bench": f"k-means N={n} K={k} D={d} it={iters}", "impl": "faiss-cpu", "seconds": t_faiss, "peak_gib": peak_gib()})
    return rows


rows = []


def progress(group: list[dict]) -> list[dict]:
    """Echo each finished group at once (stderr), so a long run shows where it is."""
    for r in group:
        print(f"  {r['bench']} | {r['impl']}: {1000 * r['seconds']:.1f} ms", file=sys.stderr, flush=True)
    return group


if not args.skip_paper_scale:
    rows += progress(step_rows("paper scale SimCLR B=256", 1_092_009, 25_000, 256, 1, 512))
    if not args.skip_dino:
        rows += progress(step_rows("paper scale DINO B=128", 1_092_009, 25_000, 128, 2, 65_536, queue_dtype="float16"))
if not args.skip_paper_scale:
    if not args.skip_dino:
        rows += progress(step_rows("DINO 4096-d B=128", 1_092_009, 25_000, 128, 2, 4096))
    rows += progress(knn_rows("queue 1M, B=256", 1_000_000, 256))
if not args.skip_paper_scale and not args.skip_refresh:
    fraction = args.refresh_fraction or (1.0 if device == "cuda" else 0.1)
    rows += progress(refresh_rows(round(1_092_009 * fraction), round(25_000 * fraction), max(1, args.repeats // 2)))
if args.quick:
    rows += progress(step_rows("N=50k K=2.5k B=256", 50_000, 2_500, 256, 1, 512))
    rows += progress(knn_rows("queue 50k, B=64", 50_000, 64))
    rows += progress(refresh_rows(20_000, 500, 1))
if not args.skip_kmeans:
    rows += progress(kmeans_rows(20_000, 2_000, 192) if not args.quick else kmeans_rows(5_000, 500, 64))
if not args.quick and not args.skip_kmeans:
    rows += progress(kmeans_rows(100_000, 5_000, 192))



def cpu_kind() -> str:
    """The vector units that decide k-means speed: AMX / AVX512-BF16 / AVX-512 / AVX2 (CPU), or the CUDA device."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    flags = ""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2")):
        if f" {flag}" in flags:
            return name
    return platform.machine()


from ssps_trainers.kmeans import _bf16_matmul_is_native  # noqa: E402  (what precision="auto" reads)

auto = "certified" if _bf16_matmul_is_native(torch.device(device)) else "float32"
print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
      f"cpu={platform.processor() or platform.machine()} kind={cpu_kind()} kmeans auto precision={auto} "
      f"repeats={args.repeats} (median)")  # fmt: skip
# the peer of each benchmark is its reference-style loop, faiss-cpu or GEMM-floor row
peer = {r["bench"]: r["seconds"] for r in rows if r["impl"].startswith(("per-anchor", "faiss", "GEMM floor"))}
memory = "CUDA max allocated (GiB)" if device == "cuda" else "process peak RSS so far (GiB)"
print("\ntime / peer: below 1 is faster than the peer (loop: 0.025 = 40x faster; floor: 2.0 = twice the floor)")
print(f"\n| benchmark | implementation | median time | time / peer | {memory} |\n|---|---|---|---|---|")
for r in rows:
    ratio = f"{r['seconds'] / peer[r['bench']]:.3f}" if r["bench"] in peer else "-"
    print(f"| {r['bench']} | {r['impl']} | {1000 * r['seconds']:.1f} ms | {ratio} | {r.get('peak_gib', float('nan')):.2f} |")
if args.json:
    with open(args.json, "w") as f:
        json.dump({"device": device, "torch": torch.__version__, "rows": rows}, f, indent=2)
