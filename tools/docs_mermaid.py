"""An mkdocs hook: the site serves its own copy of Mermaid, so diagrams render offline.

Material for MkDocs draws ```mermaid blocks with the Mermaid library, which it loads from a
CDN unless the page already has one. This hook fetches one pinned release from the npm
registry (``npm pack``, the ordinary client), checks it against the integrity hash pinned
here, keeps ``dist/mermaid.min.js`` in ``.cache/docs/`` and copies it, with its licence,
into the built site; ``mkdocs.yml`` loads it through ``extra_javascript``.

To move to another release: change ``VERSION`` and ``INTEGRITY`` (``npm view
mermaid@VERSION dist.integrity``) together.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

VERSION = "11.17.2"
INTEGRITY = (
    "sha512-"
    "V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/qt5gHO73aCleBBg=="
)
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "docs"
TARGET = "assets/javascripts/mermaid.min.js"
"""Where the site serves it (``extra_javascript`` in mkdocs.yml names the same path)."""

_MEMBERS = {"package/dist/mermaid.min.js": "mermaid.min.js", "package/LICENSE": "LICENSE"}


class MermaidUnavailable(RuntimeError):
    """Mermaid could not be fetched, or the package is not the pinned one."""


def cached() -> Path:
    """The directory holding ``mermaid.min.js`` and ``LICENSE`` of the pinned release,
    fetched on first use."""
    home = CACHE / f"mermaid-{VERSION}"
    if all((home / name).is_file() for name in _MEMBERS.values()):
        return home
    npm = shutil.which("npm")
    if npm is None:
        raise MermaidUnavailable(
            "the docs need npm to fetch Mermaid once (apt-get install -y npm, or nodejs)"
        )
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            [npm, "pack", "--silent", f"mermaid@{VERSION}", "--pack-destination", scratch],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise MermaidUnavailable(f"npm pack mermaid@{VERSION} failed: {done.stderr.strip()}")
        archive = Path(scratch) / f"mermaid-{VERSION}.tgz"
        digest = base64.b64encode(hashlib.sha512(archive.read_bytes()).digest()).decode()
        if f"sha512-{digest}" != INTEGRITY:
            raise MermaidUnavailable(
                f"mermaid-{VERSION}.tgz is not the pinned release: sha512-{digest}"
            )
        partial = Path(scratch) / "out"
        partial.mkdir()
        with tarfile.open(archive) as tar:
            for member, name in _MEMBERS.items():
                source = tar.extractfile(member)
                if source is None:
                    raise MermaidUnavailable(f"mermaid-{VERSION}.tgz has no {member}")
                (partial / name).write_bytes(source.read())
        home.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(home, ignore_errors=True)
        shutil.move(str(partial), home)
    return home


def on_config(config: Any) -> Any:
    """Fetch Mermaid before the build starts, so a failure stops it at once."""
    cached()
    return config


def on_post_build(config: Any) -> None:
    """Copy Mermaid and its licence into the built site."""
    target = Path(config["site_dir"]) / TARGET
    target.parent.mkdir(parents=True, exist_ok=True)
    home = cached()
    shutil.copyfile(home / "mermaid.min.js", target)
    shutil.copyfile(home / "LICENSE", target.with_name("mermaid.LICENSE.txt"))
