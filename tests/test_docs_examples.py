"""Every example in README.md and docs/*.md runs as written.

The code blocks are extracted from the Markdown: a ```python block is executed with the
blocks before it in the same file (one namespace per file, as a reader pastes them in order);
a ```bash or ```sh block is run by bash, line after line, in a folder kept for the file (so a
run folder made by one block is there for the next). The working folder is a fresh temporary
one, so nothing lands in the repository.

An HTML comment on the line before a block changes how it is run:

- ``<!-- slow -->``: trains on MNIST or otherwise takes more than a few seconds; marked
  ``slow`` (``pytest -m "not slow"`` leaves it out);
- ``<!-- not run: REASON -->``: shown to the reader but not run here (an install line, a
  server that runs until Ctrl-C); the reason appears in the test report.

Blocks with any other language (``text``, ``json``, none) are output or formats, not examples.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"<!--\s*(slow|not run:\s*(.*?))\s*-->")
RUNNABLE = {"python", "bash", "sh"}


def extract_blocks(path):
    """``[(line, language, code, mark, reason)]`` of the runnable blocks of a Markdown file."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, language = i, m.group(1)
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        if language in RUNNABLE:
            before = lines[start - 1] if start else ""
            mark = MARK.search(before)
            kind = None if not mark else ("slow" if mark.group(1) == "slow" else "not run")
            blocks.append((start + 1, language, "\n".join(lines[start + 1 : j]), kind, mark and mark.group(2)))
        i = j + 1
    return blocks


def cases():
    for path in DOCS:
        blocks = extract_blocks(path)
        if not blocks:
            continue
        marks = [pytest.mark.slow] if any(kind == "slow" for _, _, _, kind, _ in blocks) else []
        yield pytest.param(path, blocks, id=path.relative_to(ROOT).as_posix(), marks=marks)


@pytest.fixture
def shell_env(tmp_path):
    """An environment whose ``steadynet`` is this checkout's, run by this interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "steadynet"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m steadynet "$@"\n')
    shim.chmod(0o755)
    src = str(ROOT / "src")
    return dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
        MPLBACKEND="Agg",
    )


@pytest.mark.parametrize("path, blocks", list(cases()))
def test_every_example_runs(path, blocks, tmp_path, shell_env, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.syspath_prepend(str(ROOT / "src"))
    namespace, skipped = {"__name__": "__docs__"}, []
    for line, language, code, kind, reason in blocks:
        where = f"{path.name}:{line}"
        if kind == "not run":
            skipped.append(f"{where} ({reason})")
            continue
        if language == "python":
            try:
                exec(compile(code, where, "exec"), namespace)
            except Exception as exc:  # the block and the error, not a traceback into exec
                pytest.fail(f"{where}: the example raised {type(exc).__name__}: {exc}\n{code}")
        else:
            r = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", code],
                cwd=work,
                env=shell_env,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            assert r.returncode == 0, f"{where}: exit {r.returncode}\n{code}\n--- stderr:\n{r.stderr[-3000:]}"
    if skipped:
        print("not run:", "; ".join(skipped))


def test_the_extractor_sees_languages_and_marks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n<!-- slow -->\n```bash\nsteadynet train\n```\n```text\noutput\n```\n"
        "<!-- not run: installs packages -->\n```sh\npip install x\n```\n```python\nx = 1\n```\n"
    )
    assert extract_blocks(page) == [
        (3, "bash", "steadynet train", "slow", None),
        (10, "sh", "pip install x", "not run", "installs packages"),
        (13, "python", "x = 1", None, None),
    ]
