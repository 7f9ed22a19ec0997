"""Peak memory of an SSPS refresh (k-means on the reference table): ours vs the naive expressions.

    python benchmarks/bench_ssps_memory.py [--rows 200000] [--dim 512] [--clusters 100]

Each variant runs in a fresh process: fill the table, record the resident set (RSS), refresh
once (certified E-step, forced, so the bf16 screen is built on any CPU), record the peak RSS.
"naive" is the same refresh with the screen the stores used before row blocks: two full fp32
temporaries (`rows.float()`, `x - wide`) beside the rows. (The earlier refresh also normalised
the gathered rows into a second copy; that peak, 2 table sizes, lies below the screen's, so this
column is the earlier peak.) The column that matters is the peak above the filled table, in
units of the table's size: the floor is one copy of the filled rows (k-means works on them) plus
their bf16 screen (0.5). CUDA: torch.cuda.max_memory_allocated instead of RSS.

`--budget` prints instead the SSPS memory of every SSPS recipe at VoxCeleb2 scale (N =
1,092,009): the stores as allocated (built on the meta device: exact, nothing allocated) and the
refresh peak above them (the filled rows' copy, their bf16 screen and a row block: the measured
ratio of this script, 2.0 table sizes at most).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--rows", type=int, default=200_000)
parser.add_argument("--dim", type=int, default=512)
parser.add_argument("--clusters", type=int, default=100)
parser.add_argument("--variant", choices=["ours", "naive"], default=None, help=argparse.SUPPRESS)
parser.add_argument("--budget", action="store_true", help="Per-recipe SSPS memory at VoxCeleb2 scale (no measurement).")
args = parser.parse_args()
REFRESH_PEAK_TABLES = 2.01  # measured by this script (200k x 512, median of 3): peak above the table / table size


def budget() -> None:
    from pathlib import Path

    import torch

    from modeling_ssps import SSPSConfig
    from ssps_trainers import SSLTrainingArguments
    from ssps_trainers.methods import METHOD_CLASSES, build_method
    from ssps_trainers.ssps import SSPS

    voxceleb2 = 1_092_009
    recipes = Path(__file__).resolve().parents[1] / "ssps_trainers" / "recipes"
    print(f"SSPS memory per recipe, N = {voxceleb2:,} training utterances (VoxCeleb2 dev)\n")
    print("| recipe | positives queued (P x n_pos x D) | queue dtype | table | queue | stores | + refresh peak |")
    print("|---|---|---|---|---|---|---|")
    for path in sorted(recipes.glob("*/*_ssps*.json")):
        if path.parent.name == "demo":
            continue
        recipe = json.loads(path.read_text())
        known = {k: v for k, v in recipe.items() if k in SSLTrainingArguments.__dataclass_fields__}
        training = SSLTrainingArguments(output_dir="/tmp/unused", **known)
        method = METHOD_CLASSES[training.method]
        config = SSPSConfig(head_type=method.head_type, has_teacher=method.needs_teacher,
                            dino_output_dim=recipe.get("dino_output_dim", 65_536))  # fmt: skip
        shape = build_method(training, config).positive_shape()
        with torch.device("meta"):
            ssps = SSPS(voxceleb2, 512, shape, training.ssps_arguments())
        sizes = {name: b.numel() * b.element_size() for name, b in ssps.named_buffers()}
        table = sum(v for k, v in sizes.items() if k.startswith("table."))
        queue = sum(v for k, v in sizes.items() if k.startswith("queue.") or k == "queue_reference")
        stores = sum(sizes.values())
        gib = lambda n: f"{n / 2**30:.2f} GiB"  # noqa: E731
        print(f"| {path.parent.name}/{path.stem} | {training.ssps_queue_size:,} x {shape[0]} x {shape[1]:,} | "
              f"{training.ssps_queue_dtype} | {gib(table)} | {gib(queue)} | {gib(stores)} | {gib(stores + REFRESH_PEAK_TABLES * table)} |")  # fmt: skip


if args.budget:
    budget()
    sys.exit(0)


def peak_bytes() -> int:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(variant: str) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    from ssps_trainers import kmeans
    from ssps_trainers.estep_certified import _Screen
    from ssps_trainers.ssps import SSPS, SSPSArguments

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if variant == "naive":  # the earlier expressions, for the side-by-side column

        def naive_screen(x: torch.Tensor, block: int = 0) -> _Screen:
            rows = x.to(torch.bfloat16)
            wide = rows.float()
            return _Screen(rows, wide.norm(dim=1), (x - wide).norm(dim=1))

        kmeans._screen = naive_screen  # what spherical_kmeans calls
    settings = SSPSArguments(num_clusters=args.clusters, queue_size=args.clusters, kmeans_iters=1, kmeans_precision="certified")
    ssps = SSPS(args.rows, args.dim, (1, args.dim), settings, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    for start in range(0, args.rows, 8192):
        index = torch.arange(start, min(start + 8192, args.rows), device=device)
        values = F.normalize(torch.randn(index.numel(), args.dim, generator=generator, device=device), dim=1)
        ssps.push(index, values, values[None])
    before = peak_bytes()
    ssps.refresh(epoch=ssps.args.start_epoch)
    after = peak_bytes()
    table = args.rows * args.dim * 4
    return {"table_mib": table / 2**20, "peak_above_table": (after - before) / table}


if args.variant is not None:
    print(json.dumps(measure(args.variant)))
    sys.exit(0)

rows = {}
for variant in ("naive", "ours"):
    out = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--dim", str(args.dim), "--clusters", str(args.clusters),
                          "--variant", variant], capture_output=True, text=True, check=True)  # fmt: skip
    rows[variant] = json.loads(out.stdout.strip().splitlines()[-1])
print(f"\nSSPS refresh peak memory, N = {args.rows:,} x D = {args.dim} (table {rows['ours']['table_mib']:.0f} MiB), K = {args.clusters}\n")
print("| variant | peak above the filled table (x table size) |\n|---|---|")
for variant, row in rows.items():
    print(f"| {variant} | {row['peak_above_table']:.2f} |")
print(f"\nours / naive: {rows['ours']['peak_above_table'] / rows['naive']['peak_above_table']:.2f}")
