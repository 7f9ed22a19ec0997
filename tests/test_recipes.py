"""Every recipe does what it says: its schedules cover its epochs."""

import json
from pathlib import Path

import pytest

from ssps_trainers import SSLTrainingArguments

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "configs").glob("*/*.json"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_schedules_cover_the_epochs(path: Path) -> None:
    recipe = json.loads(path.read_text())
    defaults = SSLTrainingArguments.__dataclass_fields__
    get = lambda name: recipe.get(name, defaults[name].default if name in defaults else None)  # noqa: E731
    epochs = get("num_train_epochs")
    last = min(epochs, get("stop_at_epoch") or epochs)  # epochs actually trained
    if get("method") == "dino":
        # the teacher momentum reaches exactly 1.0 at the end of its horizon: past it the
        # evaluated teacher would never change
        assert epochs <= get("dino_schedule_epochs"), f"{path.name}: {epochs} epochs on a {get('dino_schedule_epochs')}-epoch schedule"
        assert get("dino_warmup_epochs") < last
        assert get("dino_freeze_last_layer_epochs") < last
    if get("method") == "swav":
        assert get("swav_freeze_prototypes_epochs") < last
    if get("ssps"):
        assert get("ssps_start_epoch") < last, f"{path.name}: SSPS starts at epoch {get('ssps_start_epoch')} of {last}"
    if get("stop_at_epoch") is not None:
        assert get("stop_at_epoch") <= epochs
    if path.stem.endswith(("_ssps", "_baseline")) and path.parent.name != "demo":
        base = json.loads((path.parent / (path.stem.rsplit("_", 1)[0] + ".json")).read_text())
        start = base.get("stop_at_epoch") or base["num_train_epochs"]
        assert start < last, f"{path.name}: the continuation must start after its base (epoch {start})"
        if get("ssps"):
            assert get("ssps_start_epoch") == start, f"{path.name}: SSPS must start where the base stops ({start})"
    if get("ssps") and get("method") == "dino" and path.parent.name != "demo":
        # 2 x 65,536-d positives: the half-precision queue is the recommended, explicit setting
        # (benchmarks/bench_queue_precision.py: 6.1 instead of 12.2 GiB, target KL <= 2e-7)
        assert recipe.get("ssps_queue_dtype") == "float16", f"{path.name}: state ssps_queue_dtype"


def test_the_method_registry_is_the_one_source() -> None:
    """A method is a class in methods.py: the argument choices, the commands and the trainer read it."""
    from ssps_trainers.methods import METHOD_CLASSES

    assert set(METHOD_CLASSES) == {"simclr", "moco", "swav", "vicreg", "dino"}
    with pytest.raises(ValueError, match="must be one of"):
        SSLTrainingArguments(output_dir="unused", method="byol", use_cpu=True, report_to=[])
    dino = METHOD_CLASSES["dino"]
    assert (dino.head_type, dino.needs_teacher, dino.global_crop_seconds, dino.augment_strategy) == ("dino", True, 4.0, "all")
    assert dino.frontend_defaults("ecapa_tdnn") == {"n_mels": 80, "window": "hann"}
    assert METHOD_CLASSES["moco"].needs_teacher and METHOD_CLASSES["vicreg"].head_type == "projector"
    for recipe in RECIPES:  # every recipe's method builds a config its adapter accepts
        settings = json.loads(recipe.read_text())
        if "method" in settings:
            assert settings["method"] in METHOD_CLASSES, recipe
