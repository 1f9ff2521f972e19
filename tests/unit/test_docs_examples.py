"""Every ```python block of the docs (docs/**/*.md and README.md) runs, or says why not.

The convention, for every page:

* The blocks of a page run in document order, sharing one namespace (a later block may use
  what an earlier one defined), on the in-memory backend: every App a block makes is moved
  to a private ``memory://`` broker before its backend is first used, so an example written
  for ``redis://127.0.0.1`` runs here without touching any server.
* A block may ``await`` at the top level; the page's blocks share one event loop.
* A block whose first line is ``# NAME.py`` is a file of its own: it runs as module
  ``NAME``, which the page's later blocks can import (``from orders_app import ...``);
  ``# pkg/mod.py`` runs as module ``pkg.mod`` of a package ``pkg``.
* A block that cannot run on its own (it needs a live Redis, a worker process, a
  placeholder) has, on the line just above its fence, ``<!-- not-run: the reason -->``.
  The reason is required.

Run this file as a script to print how many blocks each page executes and skips.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import os
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted(ROOT.glob("docs/**/*.md")), ROOT / "README.md"]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*?)[ \t]*$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run\b(?P<rest>.*?)-->\s*$")
_MODULE = re.compile(r"#\s*(?P<path>[A-Za-z_]\w*(?:/[A-Za-z_]\w*)*)\.py\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced Python block of a page."""

    page: Path
    line: int
    """The line of the opening fence (1-based)."""
    code: str
    skip: str | None
    """The reason it is not run, from the comment above it; None when it runs."""

    @property
    def where(self) -> str:
        """``docs/guide.md:120``."""
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page.name
        return f"{page}:{self.line}"


class MarkerError(ValueError):
    """A ``not-run`` comment without a reason, or an unclosed fence."""


def blocks(page: Path, text: str | None = None) -> list[Block]:
    """The ``python`` blocks of ``page`` in document order (fences of other languages and
    code inside them are passed over)."""
    lines = (page.read_text() if text is None else text).splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, ticks, info = opening["indent"], opening["ticks"], opening["info"]
        end = i + 1
        while end < len(lines):
            closing = _FENCE.match(lines[end])
            if (
                closing is not None
                and closing["ticks"][0] == ticks[0]
                and len(closing["ticks"]) >= len(ticks)
                and not closing["info"]
            ):
                break
            end += 1
        else:
            raise MarkerError(f"{page.name}:{i + 1}: a fence that is never closed")
        language = info.split()[0].lower() if info else ""
        if language in ("python", "py"):
            body = [
                line[len(indent) :] if line.startswith(indent) else line
                for line in lines[i + 1 : end]
            ]
            found.append(Block(page, i + 1, "\n".join(body) + "\n", _reason(page, lines, i)))
        i = end + 1
    return found


def _reason(page: Path, lines: list[str], fence: int) -> str | None:
    above = lines[fence - 1] if fence > 0 else ""
    marker = _NOT_RUN.match(above)
    if marker is None:
        return None
    reason = marker["rest"].strip().lstrip(":").strip()
    if not reason:
        raise MarkerError(f"{page.name}:{fence + 1}: a not-run comment needs a reason")
    return reason


class _MemoryOnly:
    """Moves every App made while active onto a private in-memory broker."""

    def __init__(self, broker: str) -> None:
        self.broker = broker

    @contextlib.contextmanager
    def active(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        from runnel.app import App

        original = App.__init__
        broker = self.broker

        def init(app: App, *args: Any, **kwargs: Any) -> None:
            original(app, *args, **kwargs)
            if not app.settings.redis_url.startswith("memory://"):
                app.reconfigure(redis_url=f"memory://{broker}")

        monkeypatch.setattr(App, "__init__", init)
        monkeypatch.setenv("RUNNEL_REDIS_URL", f"memory://{broker}")
        yield


def run_page(page: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """Run the page's blocks; (executed, skipped). A failing block raises, naming its line."""
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    loop = asyncio.new_event_loop()
    modules: list[str] = []
    executed = skipped = 0
    out = io.StringIO()
    environ = dict(os.environ)  # an example may set RUNNEL_* variables: they end with the page
    try:
        with _MemoryOnly(f"docs-{page.stem}").active(monkeypatch), contextlib.redirect_stdout(out):
            for block in blocks(page):
                if block.skip is not None:
                    skipped += 1
                    continue
                first = block.code.split("\n", 1)[0]
                module = _MODULE.fullmatch(first)
                if module is not None:
                    target = _module(module["path"].replace("/", "."), block, modules)
                    scope = target.__dict__
                else:
                    scope = namespace
                try:
                    _execute(block, scope, loop)
                except BaseException as exc:
                    raise AssertionError(
                        f"the example at {block.where} fails: {type(exc).__name__}: {exc}\n"
                        f"--- output so far ---\n{out.getvalue()}"
                    ) from exc
                executed += 1
    finally:
        os.environ.clear()
        os.environ.update(environ)
        for name in modules:
            sys.modules.pop(name, None)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return executed, skipped


def _module(name: str, block: Block, made: list[str]) -> types.ModuleType:
    """A new module ``name`` in ``sys.modules`` (with its parent packages, when missing)."""
    parts = name.split(".")
    for depth in range(1, len(parts)):
        package = ".".join(parts[:depth])
        if package not in sys.modules:
            parent = types.ModuleType(package)
            parent.__path__ = []
            sys.modules[package] = parent
            made.append(package)
    module = types.ModuleType(name)
    module.__file__ = block.where
    sys.modules[name] = module
    made.append(name)
    if len(parts) > 1:
        setattr(sys.modules[".".join(parts[:-1])], parts[-1], module)
    return module


def _execute(block: Block, scope: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
    code = compile(
        block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    result = eval(code, scope)
    if asyncio.iscoroutine(result):
        loop.run_until_complete(result)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_examples_of_each_page_run(page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_page(page, monkeypatch)


def test_most_examples_run() -> None:
    found = [block for page in PAGES for block in blocks(page)]
    executed = [block for block in found if block.skip is None]
    assert len(found) >= 40
    assert len(executed) >= len(found) // 2, "more examples are skipped than run"


def test_a_not_run_marker_needs_a_reason(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("<!-- not-run -->\n```python\nx = 1\n```\n")
    with pytest.raises(MarkerError, match="needs a reason"):
        blocks(page)
    page.write_text("<!-- not-run: needs a worker -->\n```python\nx = 1\n```\n")
    assert [block.skip for block in blocks(page)] == ["needs a worker"]


def test_blocks_share_a_namespace_and_a_failing_block_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "```python\nx = 1\n```\n\n```console\n$ not python\n```\n\n"
        "- a list\n\n  ```python\n  import asyncio\n  await asyncio.sleep(0)\n  y = x + 1\n  ```\n"
        "```python\nassert y == 2\n```\n"
    )
    assert run_page(page, monkeypatch) == (3, 0)
    page.write_text("```python\nassert 1 == 2, 'wrong'\n```\n")
    with pytest.raises(AssertionError, match=r"p\.md:1 fails: AssertionError: wrong"):
        run_page(page, monkeypatch)


def test_what_an_example_sets_in_the_environment_ends_with_its_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNNEL_DOCS_PROBE", raising=False)
    page = tmp_path / "p.md"
    page.write_text("```python\nimport os\nos.environ['RUNNEL_DOCS_PROBE'] = '1'\n```\n")
    assert run_page(page, monkeypatch) == (1, 0)
    assert "RUNNEL_DOCS_PROBE" not in os.environ


def test_an_app_for_redis_runs_on_the_memory_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "```python\nfrom runnel import App\n"
        "app = App(name='x', redis_url='redis://127.0.0.1:6379/0')\n"
        "assert app.settings.redis_url == 'memory://docs-p', app.settings.redis_url\n```\n"
    )
    assert run_page(page, monkeypatch) == (1, 0)


def test_a_block_named_as_a_file_is_importable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "```python\n# shop_module.py\nVALUE = 3\n```\n"
        "```python\nfrom shop_module import VALUE\nassert VALUE == 3\n```\n"
    )
    assert run_page(page, monkeypatch) == (2, 0)
    assert "shop_module" not in sys.modules
    page.write_text(
        "```python\n# shop_pkg/app.py\nVALUE = 4\n```\n"
        "```python\nfrom shop_pkg.app import VALUE\nassert VALUE == 4\n```\n"
    )
    assert run_page(page, monkeypatch) == (2, 0)
    assert "shop_pkg" not in sys.modules


if __name__ == "__main__":
    total_run = total_skipped = 0
    for page in PAGES:
        found = blocks(page)
        skipped = sum(block.skip is not None for block in found)
        total_run += len(found) - skipped
        total_skipped += skipped
        print(f"{page.relative_to(ROOT)!s:32} {len(found) - skipped:3} run {skipped:3} not run")
        for block in found:
            if block.skip is not None:
                print(f"    {block.where}: {block.skip}")
    print(f"{'total':32} {total_run:3} run {total_skipped:3} not run")
