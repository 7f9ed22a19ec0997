"""The repository explains itself: every `docs/<file>.md §N[.M]` cited in the code, tests,
configs and READMEs resolves to a section (or a numbered item of it) that exists, and no
citation points at documents outside the repository."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"docs/([a-z_]+\.md) §(\d+)(?:\.(\d+))?")
SOURCES = [p for pattern in ("modeling_ssps/*.py", "ssps_trainers/*.py", "ssps_trainers/cli/*.py", "scripts/*.py", "tests/*.py", "benchmarks/*.py", "metrics/**/*.py",
                             "metrics/**/*.md", "model_cards/*.md", "docs/*.md", "README.md", "configs/**/*.json")
           for p in REPO.glob(pattern)]  # fmt: skip


def sections(document: Path) -> dict[int, str]:
    """Top-level `## N.` sections of a document, with their text."""
    out: dict[int, str] = {}
    current = None
    for line in document.read_text().splitlines():
        heading = re.match(r"## (\d+)\. ", line)
        if heading:
            current = int(heading.group(1))
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
    return out


def test_every_citation_resolves() -> None:
    found = 0
    for source in SOURCES:
        text = source.read_text(errors="ignore")
        for name, major, minor in CITATION.findall(text):
            document = REPO / "docs" / name
            assert document.exists(), f"{source.relative_to(REPO)} cites missing {document.name}"
            parts = sections(document)
            assert int(major) in parts, f"{source.relative_to(REPO)} cites {name} §{major}, which does not exist"
            if minor:
                body = parts[int(major)]
                assert re.search(rf"^### {major}\.{minor} |^ *{minor}\. ", body, re.M), (
                    f"{source.relative_to(REPO)} cites {name} §{major}.{minor}, which does not exist")  # fmt: skip
            found += 1
    assert found > 50  # the code does cite the docs


def test_no_citation_points_outside_the_repository() -> None:
    for source in SOURCES:
        text = source.read_text(errors="ignore")
        assert not re.search(r"\b(SPEC|DESIGN) §|\b(SPEC|DESIGN)\.md", text), f"{source.relative_to(REPO)} cites a document outside the repository"


def test_docs_link_to_files_that_exist() -> None:
    for document in (REPO / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([a-z_]+\.md)\)", document.read_text()):
            assert (REPO / "docs" / target).exists(), f"{document.name} links to missing {target}"
