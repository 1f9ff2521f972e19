"""The documentation site as a reader sees it: built, served, and opened in headless Chromium.

The site is built in strict mode from this checkout (``mkdocs build --strict``, as ``make
docs`` does), served over HTTP on a free port of 127.0.0.1, and each page checked here is
loaded by Chromium, which runs its JavaScript; the DOM is read after the page settled
(``--dump-dom`` with a virtual-time budget). Material draws each Mermaid diagram only once
the library has parsed and rendered it, replacing the ``<pre class="mermaid">`` source with
a ``<div class="mermaid">`` that holds the SVG, so a diagram that fails to load or to
parse leaves its source behind, and fails the test.

Needs the docs dependency group (``make docs`` or ``make test`` installs it) and a
``chromium`` binary (``apt-get install -y chromium``). Without them the tests are skipped,
except under CI (``CI`` set), where they fail.

Set ``RUNNEL_DOCS_SCREENSHOT`` to a path to keep the home page's screenshot there.
"""

from __future__ import annotations

import functools
import html
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUDGET_MS = 15_000
"""Virtual time Chromium gives a page to load its scripts and render."""


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: CI must install it", pytrace=False)
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built strict into a temporary directory."""
    if importlib.util.find_spec("mkdocs") is None:
        _missing("mkdocs (the docs dependency group: make docs)")
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(target)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return target


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    """The site, served by a thread of this process on a free port of 127.0.0.1."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            # A browser that closes a connection early (a page loaded, the tab shut) is
            # not an error of the site; anything else still prints.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)  # type: ignore[arg-type]

    handler = functools.partial(Quiet, directory=str(site))
    server = Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    _missing("chromium (apt-get install -y chromium)")
    raise AssertionError("unreachable")


def _run_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={BUDGET_MS}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def dom(chromium: str, base_url: str, tmp_path: Path) -> functools.partial[str]:
    """``dom(path)``: the page's DOM after Chromium loaded it and ran its scripts."""

    def load(path: str) -> str:
        done = _run_chromium(chromium, tmp_path / "profile", "--dump-dom", base_url + path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "<html" in done.stdout, done.stderr[-2000:]
        return done.stdout

    return functools.partial(load)


def _title(page: str) -> str:
    found = re.search(r"<title>(.*?)</title>", page, re.S)
    assert found is not None
    return html.unescape(found[1]).strip()


def _nav_titles(page: str) -> list[str]:
    nav = re.search(r'<nav class="md-nav md-nav--primary".*?</nav>\s*</div>\s*</div>', page, re.S)
    assert nav is not None, "no primary navigation"
    labels = re.findall(r'<span class="md-ellipsis">\s*(.*?)\s*</span>', nav[0], re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", label)).strip() for label in labels]


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_the_home_page_has_its_title_navigation_and_a_code_block(
    dom: functools.partial[str],
    chromium: str,
    base_url: str,
    tmp_path: Path,
) -> None:
    page = dom("")
    assert _title(page) == "runnel"
    nav = _nav_titles(page)
    for entry in (
        "Home",
        "Getting started",
        "Concepts",
        "Guide",
        "Testing",
        "Deployment",
        "Observability",
        "Architecture",
        "Benchmarks",
        "API reference",
        "Changelog",
    ):
        assert entry in nav, f"{entry!r} is not in the navigation: {nav}"
    blocks = re.findall(r'<div class="highlight">\s*<pre[^>]*>(.*?)</pre>', page, re.S)
    assert blocks, "no code block"
    assert "from runnel import App, Record" in _text(blocks[0])
    assert '<span class="kn">import</span>' in blocks[0], "the code is not highlighted"
    assert "data-clipboard-target" in page, "no copy button (the theme's scripts did not run)"
    assert 'class="md-search__input"' in page

    shot = Path(os.environ.get("RUNNEL_DOCS_SCREENSHOT") or tmp_path / "home.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    done = _run_chromium(
        chromium,
        tmp_path / "shot-profile",
        "--window-size=1280,1000",
        f"--screenshot={shot}",
        base_url,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000, "a screenshot that small is a blank page"


def test_every_diagram_of_the_concepts_page_is_rendered(dom: functools.partial[str]) -> None:
    source = (ROOT / "docs" / "concepts.md").read_text()
    expected = source.count("```mermaid")
    assert expected >= 4
    page = dom("concepts/")
    assert _title(page).startswith("Concepts")
    assert '<pre class="mermaid"' not in page, "a diagram was left unrendered"
    assert "Syntax error in text" not in page
    assert page.count('<div class="mermaid"></div>') == expected


def test_the_api_reference_is_generated_from_the_docstrings(dom: functools.partial[str]) -> None:
    page = dom("reference/runnel/")
    for name in ("runnel.app.App", "runnel.stream.Stream", "runnel.record.Record"):
        assert f'id="{name}"' in page, f"no entry for {name}"
    app = _text(page.split('id="runnel.app.App"', 1)[1][:20_000])
    assert "A runnel application." in app
    assert ">>> app = App(" in app  # the docstring's example, as a code block


def test_every_page_of_the_navigation_is_served(base_url: str, site: Path) -> None:
    pages = sorted(path.relative_to(site) for path in site.rglob("index.html"))
    assert len(pages) >= 20
    for page in pages:
        url = base_url + str(page.parent).replace(".", "") + ("/" if page.parent.name else "")
        with urllib.request.urlopen(url.replace("//", "/").replace(":/", "://"), timeout=10) as r:
            assert r.status == 200
    index = (site / "search" / "search_index.json").read_text()
    assert "Harness" in index
    assert "terminationGracePeriodSeconds" in index
