"""Embedding throughput of the SSPS encoders: utterances/s and real-time factor (RTF = compute
seconds per audio second), batched (padded, masked) vs one-by-one, at 2, 4 and 8 s.

    python benchmarks/bench_encoder.py [--utterances 8] [--repeats 3] [--json out.json]

Prints a markdown table; medians over `--repeats` runs. Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from modeling_ssps import SSPSConfig, SSPSModel, count_parameters

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--utterances", type=int, default=8)
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--seconds", type=float, nargs="+", default=[2.0, 4.0, 8.0])
parser.add_argument("--json", type=str, default=None)
parser.add_argument("--device", type=str, default="cuda" if torch.cuda.is_available() else "cpu")
args = parser.parse_args()

ENCODERS = {
    "ECAPA C=512": SSPSConfig(ecapa_channels=(512, 512, 512, 512, 1536)),
    "ECAPA C=1024": SSPSConfig(),
    "Fast ResNet-34": SSPSConfig(encoder_type="fast_resnet34"),
}


def timed(fn) -> float:
    times = []
    for _ in range(args.repeats):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


rows = []
torch.manual_seed(0)
for name, config in ENCODERS.items():
    model = SSPSModel(config).eval().to(args.device)
    for seconds in args.seconds:
        n = int(seconds * 16000)
        # lengths spread between 75% and 100% of n, as in a length-sorted evaluation batch
        lengths = torch.linspace(int(0.75 * n), n, args.utterances).long()
        waves = torch.randn(args.utterances, n, device=args.device)
        mask = (torch.arange(n, device=args.device)[None] < lengths.to(args.device)[:, None]).long()
        audio = float(lengths.sum()) / 16000

        def batched() -> None:
            with torch.inference_mode():
                model(input_values=waves, attention_mask=mask)

        def single() -> None:
            with torch.inference_mode():
                for row in range(args.utterances):
                    model(input_values=waves[row : row + 1, : int(lengths[row])])

        batched()  # warm-up
        for mode, fn in (("batched", batched), ("one-by-one", single)):
            t = timed(fn)
            rows.append({
                "encoder": name, "params_M": round(count_parameters(model) / 1e6, 2),
                "seconds": seconds, "mode": mode, "utt_per_s": args.utterances / t,
                "rtf": t / audio,
            })  # fmt: skip

print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
      f"cpu={platform.processor() or platform.machine()} utterances={args.utterances} "
      f"repeats={args.repeats} (median)")  # fmt: skip
print("\n| encoder | params | crop | mode | utt/s | RTF |\n|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['encoder']} | {r['params_M']}M | {r['seconds']:g} s | {r['mode']} | "
          f"{r['utt_per_s']:.1f} | {r['rtf']:.4f} |")  # fmt: skip
if args.json:
    with open(args.json, "w") as f:
        json.dump({"device": args.device, "torch": torch.__version__, "rows": rows}, f, indent=2)
