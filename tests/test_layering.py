"""Import direction scripts -> ssps_trainers -> modeling_ssps (docs/architecture.md §1), checked on the source."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# modeling_ssps is uploaded as Hub remote code: besides the standard library it may only use
# what transformers itself depends on. huggingface_hub is a hard dependency of transformers
# (its `strict` dataclass decorator is how configs are declared).
USE_TIME_ALLOWED = {"torch", "numpy", "transformers", "huggingface_hub"}
USE_TIME_OPTIONAL = {"soundfile", "soxr"}  # only inside try/except ImportError


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module, level, inside_try) for every import statement of a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            for child in node.body:
                for sub in ast.walk(child):
                    guarded.add(id(sub))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0, id(node) in guarded) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level, id(node) in guarded))
    return found


def sources(package: str) -> list[Path]:
    return sorted((REPO_ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", sources("modeling_ssps"), ids=lambda p: p.name)
def test_modeling_ssps_is_flat_and_self_contained(path: Path) -> None:
    assert path.parent == REPO_ROOT / "modeling_ssps", "remote code cannot use sub-packages"
    for module, level, inside_try in imports(path):
        top = module.split(".")[0]
        if level:
            assert level == 1 and "." not in module, f"{path.name}: only single-dot imports"
            continue
        if top in sys.stdlib_module_names or top in USE_TIME_ALLOWED:
            continue
        assert top in USE_TIME_OPTIONAL and inside_try, f"{path.name} imports {module!r}"


@pytest.mark.parametrize("path", [p for p in sources("ssps_trainers") if p.parent.name != "cli"], ids=lambda p: p.name)
def test_trainers_never_import_the_command_line_layer(path: Path) -> None:
    """The command-line layer (ssps_trainers/cli, and scripts/ that run it) sits on top."""
    for module, level, _ in imports(path):
        assert level == 0 or module.split(".")[0] != "cli", f"{path.name} imports .{module}"
        assert module.split(".")[0] != "scripts" and not module.startswith("ssps_trainers.cli"), f"{path.name} imports {module!r}"


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "scripts").glob("*.py")), ids=lambda p: p.name)
def test_scripts_are_thin_wrappers_of_the_commands(path: Path) -> None:
    assert [m for m, _, _ in imports(path)] == ["ssps_trainers.cli"] and (REPO_ROOT / "ssps_trainers" / "cli" / path.name).exists()


def test_the_checker_sees_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import torchaudio\ntry:\n    import soundfile\nexcept ImportError:\n    pass\n")
    assert imports(bad) == [("torchaudio", 0, False), ("soundfile", 0, True)]


SSPS_MODULES = ("ssps.py", "ssps_arguments.py", "ssps_sampling.py", "memory.py", "kmeans.py", "estep.py", "estep_certified.py", "seeds.py",
                "ssps_diagnostics.py")


@pytest.mark.parametrize("name", SSPS_MODULES)
def test_ssps_modules_are_plain_torch(name: str) -> None:
    """The SSPS core imports torch (and the standard library) and its siblings only."""
    siblings = {Path(n).stem for n in SSPS_MODULES}
    for module, level, _ in imports(REPO_ROOT / "ssps_trainers" / name):
        top = module.split(".")[0]
        if level:  # relative: a sibling of the SSPS core
            assert top in siblings, f"ssps_trainers/{name} imports .{module}, outside the SSPS core"
        else:
            assert top in sys.stdlib_module_names or top == "torch", f"ssps_trainers/{name} imports {module}"


def test_light_modules_do_not_import_the_trainer_stack() -> None:
    code = "import sys, ssps_trainers.synthesis, ssps_trainers.ssps; print(sorted(m for m in ('accelerate', 'datasets', 'transformers.trainer') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_the_sampling_rate_is_one_fact() -> None:
    """16 kHz is defined once per layer (the use-time package cannot import the train-time one) and
    the two agree; everything else reads a config, a feature extractor or these constants."""
    from modeling_ssps import SSPSConfig, SSPSFeatureExtractor
    from modeling_ssps.configuration_ssps import SAMPLING_RATE as USE_TIME
    from ssps_trainers.corpus import SAMPLING_RATE as TRAIN_TIME

    assert USE_TIME == TRAIN_TIME == SSPSConfig().sampling_rate == SSPSFeatureExtractor().sampling_rate
    literal = [(str(p.relative_to(REPO_ROOT)), line.strip()) for package in ("modeling_ssps", "ssps_trainers") for p in sources(package)
               for line in p.read_text().splitlines()
               if ("16000" in line or "16_000" in line) and not line.lstrip().startswith((">>>", "#"))]  # fmt: skip
    expected = {
        "modeling_ssps/configuration_ssps.py": "SAMPLING_RATE = 16000",  # the two definitions
        "ssps_trainers/corpus.py": "SAMPLING_RATE = 16000",
        "modeling_ssps/feature_extraction_ssps.py": "(torch.Size([2, 16000]), [16000, 8000])",  # a doctest's output
        "ssps_trainers/cli/export_onnx.py": "example_mask[1, 16000:] = 0",  # a sample count of the tracing example
    }
    assert sorted(path for path, _ in literal) == sorted(expected), literal
    assert all(expected[path] == line for path, line in literal), literal


SEED_MIX = re.compile(r"seed\s*[*+]|[*+]\s*(self\.args\.|args\.|training\.)?seed\b")


def hand_mixed_seeds(path: Path) -> list[int]:
    """Lines of a file that derive a seed by arithmetic instead of through seeds.py."""
    return [n for n, line in enumerate(path.read_text().splitlines(), 1) if SEED_MIX.search(line.split("#")[0])]


def test_derived_seeds_come_from_one_module(tmp_path: Path) -> None:
    """Every seed a run derives from --seed is a function of ssps_trainers/seeds.py."""
    found = {str(p.relative_to(REPO_ROOT)): hand_mixed_seeds(p) for p in sources("ssps_trainers") if p.name != "seeds.py"}
    assert {path: lines for path, lines in found.items() if lines} == {}
    bad = tmp_path / "bad.py"  # the checker sees what it forbids
    bad.write_text("g.manual_seed(self.args.seed * 7919 + step)\nx = seed + 1\nseeds.kmeans_start(seed, 1, 0)\n")
    assert hand_mixed_seeds(bad) == [1, 2]
