"""Render a page in a real headless Chromium (Debian's ``chromium`` package) and read it back.

The console log is captured: a blocked external fetch (the page's Content-Security-Policy forbids
all of them) or a script error shows up there, so a clean console means the page is
self-contained and loads without errors.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0")


@dataclass
class RenderedPage:
    dom: str
    console: list[str]
    counts: dict[str, str]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("Chromium is required for the report test: apt-get install -y chromium")
    return path


def render(page: Path, *, screenshot: Path | None = None) -> RenderedPage:
    """Load ``page`` from disk, return the DOM after load, console messages and data-count cells."""
    with tempfile.TemporaryDirectory(prefix="cartscout-chromium-") as profile:
        flags = [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        if screenshot is not None:
            subprocess.run([*flags, "--window-size=1280,2400", f"--screenshot={screenshot}", page.resolve().as_uri()],
                           capture_output=True, text=True, timeout=60, check=True)
        done = subprocess.run([*flags, "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=60, check=True)
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    parser = _CountParser()
    parser.feed(done.stdout)
    return RenderedPage(done.stdout, console, parser.counts)


class _CountParser(HTMLParser):
    """Collect the text of every element carrying a ``data-count`` attribute (and SVG attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, str] = {}
        self._open: list[str] = []

    def handle_starttag(self, tag, attrs):
        key = dict(attrs).get("data-count")
        if key is not None:
            if tag == "svg":
                name, _, value = key.rpartition(":")
                self.counts[name] = value
            else:
                self._open.append(key)
                self.counts[key] = ""

    def handle_data(self, data):
        if self._open:
            self.counts[self._open[-1]] += data.strip()

    def handle_endtag(self, tag):
        if self._open and tag in ("td", "div"):
            self._open.pop()
