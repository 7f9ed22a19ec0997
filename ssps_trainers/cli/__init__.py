"""The command-line tools, installed as console scripts by `pip install ssps-speaker[train]`.

| command | module | what it does |
|---|---|---|
| `ssps-train` | `train` | SSL training, optionally with SSPS (recipes by name or path) |
| `ssps-prepare` | `prepare_voxceleb` | raw VoxCeleb-layout trees -> standard 🤗 audio datasets |
| `ssps-diagnose` | `diagnose_ssps` | will SSPS help? label-free bootstrap diagnostic |
| `ssps-fill` | `fill_ssps_queues` | the SSPS filling pass over a base checkpoint |
| `ssps-average` | `average_checkpoints` | average the last checkpoints of a run |
| `ssps-evaluate` | `evaluate_sv` | EER / minDCF on VoxCeleb-format trial lists |
| `ssps-analyze` | `analyze_embeddings` | speaker/session probes and clustering of embeddings |
| `ssps-export` | `export_to_hub` | a Hub-ready model folder (card, calibrated threshold) |
| `ssps-onnx` | `export_onnx` | ONNX export with the front-end |
| `ssps-demo` | `demo` | the main job on a generated corpus |
| `ssps-demo-corpus` | `make_demo_corpus` | the synthetic / TTS demo corpus |
| `ssps-augment-sets` | `make_augmentation_sets` | MUSAN-layout noise and simulated RIRs |

Each command runs its module as `__main__`; `scripts/<module>.py` in a checkout does the same, so
`accelerate launch scripts/train.py ...` and `accelerate launch -m ssps_trainers.cli.train ...`
are the multi-process forms. Recipes ship inside the package (`ssps_trainers/recipes`, also
reachable as `configs/` in a checkout): `--recipe ecapa/simclr_ssps` or `--recipe path/to.json`.
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
COMMANDS = {
    "train": "train", "prepare": "prepare_voxceleb", "diagnose": "diagnose_ssps", "fill": "fill_ssps_queues",
    "average": "average_checkpoints", "evaluate": "evaluate_sv", "analyze": "analyze_embeddings", "export": "export_to_hub",
    "onnx": "export_onnx", "demo": "demo", "demo-corpus": "make_demo_corpus", "augment-sets": "make_augmentation_sets",
}  # fmt: skip


def run(module: str) -> None:
    """Run `ssps_trainers.cli.<module>` as the program, with the current command line."""
    runpy.run_module(f"{__name__}.{module}", run_name="__main__", alter_sys=True)


def _command(module: str) -> Callable[[], None]:
    def main() -> None:
        run(module)

    main.__name__ = module
    return main


for _name, _module in COMMANDS.items():  # the console-script entry points: ssps_trainers.cli:<name>
    globals()[_name.replace("-", "_")] = _command(_module)


def recipe_names() -> list[str]:
    return sorted(p.relative_to(RECIPES).with_suffix("").as_posix() for p in RECIPES.glob("*/*.json"))


def resolve_recipe(value: str) -> Path:
    """A recipe given by path, or by name (`ecapa/simclr_ssps`, with or without `.json`)."""
    path = Path(value)
    if path.is_file():
        return path
    named = RECIPES / (value if value.endswith(".json") else f"{value}.json")
    if named.is_file():
        return named
    raise SystemExit(f"recipe {value!r} is neither a file nor a shipped recipe (one of: {', '.join(recipe_names())})")


def pop_recipe(argv: list[str]) -> tuple[list[str], str | None]:
    """`argv` without its `--recipe X` / `--recipe=X`, and X (the last one given)."""
    rest, value, skip = [], None, False
    for position, item in enumerate(argv):
        if skip:
            skip = False
        elif item == "--recipe":
            if position + 1 >= len(argv):
                raise SystemExit("--recipe needs a name or a path")
            value, skip = argv[position + 1], True
        elif item.startswith("--recipe="):
            value = item.split("=", 1)[1]
        else:
            rest.append(item)
    return rest, value


def load_recipe(path: Path) -> dict[str, Any]:
    try:
        recipe = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"{path}: cannot read the recipe ({error})") from error
    if not isinstance(recipe, dict):
        raise SystemExit(f"{path}: a recipe is a JSON object of settings")
    return recipe


def apply_recipe(parser: Any, path: Path, strict: bool) -> None:
    """A recipe's settings become the parser's defaults (explicit flags still override them).
    strict: a setting the parser does not know is an error; else it is skipped (a command that
    reads only part of a recipe, e.g. ssps-fill)."""
    recipe = load_recipe(path)
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(recipe) - known)
    if strict and unknown:
        raise SystemExit(f"{path}: unknown settings {unknown}")
    parser.set_defaults(**{key: value for key, value in recipe.items() if key in known})

