"""The documentation stays true to itself (needs no Envoy and no build).

* Every relative link in README.md and docs/*.md leads to a file or folder of
  the repository, and every ``#anchor`` to a heading of the page it names
  (GitHub's anchors: lower case, punctuation dropped, spaces as ``-``).
* Every citation of a page section in the code, tests, scripts and docs,
  written ``docs/<page>.md, "<Section>"``, names a heading of that page.
* Nothing in the repository points readers outside it.

Run alone: ``.venv/bin/python -m pytest tests/e2e/test_docs.py``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_DIRS = {".git", "target", ".venv", ".run", "node_modules", "__pycache__"}
TEXT_SUFFIXES = {".rs", ".py", ".md", ".yaml", ".yml", ".json", ".toml", ".sh", ""}

LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# The developers' steering notes live beside the repository, never in it: no
# file names them (the words are assembled so that this file does not either).
OUTSIDE = re.compile(re.escape(".." + "/shared") + "|" + "S" + "PEC" + "(?!IFIED)")
CITATION = re.compile(r'docs/([a-z]+)\.md,\s+"((?:[^"\\]|\\.)+?)"')


def prose_lines(text: str) -> list[str]:
    """The lines of a markdown page outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(page: Path) -> list[str]:
    return [m.group(2) for line in prose_lines(page.read_text(encoding="utf-8")) if (m := HEADING.match(line))]


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for h in headings(page):
        s = slug(h)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def links(page: Path) -> list[str]:
    found = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        found.extend(m.group(1) for m in LINK.finditer(line))
    return found


def test_the_pages_exist():
    names = {p.name for p in PAGES if p.parent.name == "docs"}
    for page in ["README.md", "token.md", "configuration.md", "responses.md", "revocation.md",
                 "telemetry.md", "cli.md", "deployment.md", "figures.md", "development.md", "security.md"]:
        assert page in names, f"docs/{page} is missing"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
            continue
        if ROOT not in dest.parents and dest != ROOT:
            broken.append(f"{target}: outside the repository")
            continue
        if anchor:
            if dest.suffix != ".md" or dest.is_dir():
                broken.append(f"{target}: an anchor into something that is not a page")
            elif anchor not in anchors(dest):
                broken.append(f"{target}: no heading with that anchor in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


def repository_files():
    """The repository's text files: what git tracks or would (its ignores
    respected), or every file outside build and tool folders without git."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout.decode().split("\0")
        candidates = [ROOT / name for name in listed if name]
    except (OSError, subprocess.CalledProcessError):
        candidates = list(ROOT.rglob("*"))
    for path in candidates:
        if any(part in SKIP_DIRS for part in path.relative_to(ROOT).parts):
            continue
        if path.is_file() and path.suffix in TEXT_SUFFIXES and path.stat().st_size < 2_000_000:
            yield path


def test_every_cited_section_is_a_heading_of_its_page():
    broken = []
    pages: dict[str, set[str]] = {}
    for path in repository_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        # A citation may break across comment lines: join them first.
        flat = re.sub(r"\s*\n\s*(?://[/!]?|#|\*)?\s*", " ", text)
        for m in CITATION.finditer(flat):
            page, section = m.group(1), m.group(2).replace('\\"', '"')
            target = ROOT / "docs" / f"{page}.md"
            if not target.exists():
                broken.append(f"{path.relative_to(ROOT)}: docs/{page}.md does not exist")
                continue
            if page not in pages:
                pages[page] = {h.replace("`", "") for h in headings(target)}
            if section.replace("`", "") not in pages[page]:
                broken.append(f'{path.relative_to(ROOT)}: docs/{page}.md has no section "{section}"')
    assert not broken, "citations of missing sections:\n" + "\n".join(sorted(set(broken)))


def test_nothing_points_outside_the_repository():
    offenders = []
    for path in repository_files():
        if path == Path(__file__).resolve():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not offenders, "references to files outside the repository:\n" + "\n".join(offenders)
