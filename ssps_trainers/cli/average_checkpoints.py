"""Average the last N checkpoints of a run into one `save_pretrained` folder (docs/method.md §14).

    python scripts/average_checkpoints.py --run_dir runs/simclr_ssps --last 10 --output_dir runs/simclr_ssps/averaged
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from modeling_ssps import SSPSForPreTraining
from ssps_trainers.checkpoints import average_state_dicts, list_checkpoints
from ssps_trainers.outputs import claim_output_dir, replace_dir

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
parser.add_argument("--run_dir", type=Path, required=True, help="Training output folder with checkpoint-<step> folders.")
parser.add_argument("--last", type=int, default=10, help="How many of the newest checkpoints (10 ECAPA, 5 ResNet).")
parser.add_argument("--output_dir", type=Path, required=True, help="Where the averaged model is saved (refused if not empty unless --overwrite).")
parser.add_argument("--overwrite", action="store_true", help="Replace a non-empty --output_dir (never a checkpoint or the run folder itself).")
args = parser.parse_args()
if args.output_dir.resolve() == args.run_dir.resolve():
    raise SystemExit(f"--output_dir {args.output_dir} is the run folder: choose a subfolder such as {args.run_dir / 'averaged'}")
claim_output_dir(args.output_dir, args.overwrite, inputs=list_checkpoints(args.run_dir))

checkpoints = list_checkpoints(args.run_dir)
if len(checkpoints) < args.last:
    raise SystemExit(f"{args.run_dir} has {len(checkpoints)} checkpoints with weights, fewer than --last {args.last}")
chosen = checkpoints[-args.last :]
print("averaging", ", ".join(p.name for p in chosen))
model = SSPSForPreTraining.from_pretrained(chosen[-1])
model.load_state_dict(average_state_dicts(chosen), strict=True)
staged = args.output_dir.with_name(args.output_dir.name + ".partial")
if staged.exists():
    shutil.rmtree(staged)  # our own leftover of an interrupted run
model.save_pretrained(staged)
for name in ("preprocessor_config.json",):
    if (chosen[-1] / name).exists():
        shutil.copy(chosen[-1] / name, staged / name)
replace_dir(staged, args.output_dir)
print(f"saved {args.output_dir}")
