"""Docs check: build the site with no warnings and look at every page in Chromium.

Usage (from the repository root; needs the ``docs`` extra and Chromium, e.g.
``apt-get install chromium`` on Debian/Ubuntu)::

    python docs/check.py                 # build (-W), then check every page
    python docs/check.py --no-build      # check an existing docs/_build/html
    python docs/check.py --html DIR      # check another build
    python docs/check.py --skip-browser-if-missing   # CI: build only without Chromium

Every HTML page is opened in headless Chromium with the network disabled
(``--disable-background-networking`` and a proxy that goes nowhere). After
the page's scripts ran, the check reads the DOM and fails when

* a math element (``span.math``/``div.math``) still holds raw TeX, i.e.
  MathJax did not typeset it (it must come from the build, not a CDN), or
* an ``<img>`` is broken: its source file is missing from the build, or the
  browser reports it as not loaded (``naturalWidth == 0``).

A screenshot of every page goes to ``docs/_build/screenshots/`` (a build
artefact, not committed). Exit status 0 when the build had no warning and
every page passed.
"""

import argparse
import html
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Appended to every page when SKAM_DOCS_CHECK=1 (see conf.py): after load and
# MathJax's typesetting, record what the browser saw as <body data-*> values.
PROBE = "skam_check.js"

_MATH = re.compile(
    r'<(span|div) class="math[^"]*"[^>]*>(.*?)</\1>', re.DOTALL | re.IGNORECASE
)
_RAW_TEX = re.compile(r"\\\(|\\\[|\$\$|\\begin\{")
_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_SRC = re.compile(r'\bsrc="([^"]+)"')
# a citation whose text docutils parsed as an enumerated list ("H. Ramsauer")
_CITATION_LIST = re.compile(
    r'role="doc-biblioentry">\s*<span class="label"><span class="fn-bracket">'
    r'\[</span>(\w+)<span class="fn-bracket">\]</span></span>\s*<ol'
)
_PROBE = re.compile(r'data-skam-(\w+(?:-\w+)*)="([^"]*)"')


NO_BROWSER = (
    "no Chromium on PATH (looked for {}): install it (Debian/Ubuntu: "
    "`apt-get install chromium`) to look at the pages".format(", ".join(BROWSERS))
)


def find_browser():
    """Path of a Chromium-like browser, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def build(outdir):
    """Sphinx build with warnings as errors; returns the exit status."""
    env = {**os.environ, "SKAM_DOCS_CHECK": "1"}
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going"]
    cmd += ["-n"] if os.environ.get("SKAM_DOCS_NITPICKY") else []
    cmd += [str(DOCS), str(outdir)]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, env=env, cwd=ROOT).returncode


def _chromium(browser, profile, *args, timeout=60):
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--proxy-server=http://127.0.0.1:9",  # no network: every request fails
        "--proxy-bypass-list=<-loopback>",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        "--run-all-compositor-stages-before-draw",
    ]
    # Chromium forks helpers: run it in its own session so that a hung
    # browser is ended with all its processes, then try once more.
    for attempt in (1, 2):
        proc = subprocess.Popen(
            [browser, *flags, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            print(f"     (Chromium timed out after {timeout} s, attempt {attempt})")
    return subprocess.CompletedProcess(proc.args, -9, "", "timed out")


def check_page(browser, profile, page, html_dir, shots):
    """Problems found on one page (an empty list when it is fine)."""
    url = page.resolve().as_uri()
    dom = _chromium(browser, profile, "--dump-dom", url).stdout
    problems = []
    if not dom.strip():
        return ["Chromium returned no DOM"]
    for _, body in _MATH.findall(dom):
        if "mjx-container" not in body and _RAW_TEX.search(html.unescape(body)):
            text = re.sub(r"<[^>]+>", "", html.unescape(body)).strip()
            problems.append(f"raw TeX: {text[:70]!r}")
    for tag in _IMG.findall(dom):
        src = _SRC.search(tag)
        if not src:
            problems.append(f"<img> without src: {tag[:80]}")
            continue
        target = urlparse(src.group(1))
        if target.scheme in ("http", "https"):
            problems.append(f"image from the network: {src.group(1)}")
        elif target.scheme in ("", "file") and not target.path.startswith("data:"):
            path = (page.parent / unquote(target.path)).resolve()
            if target.scheme == "file":
                path = Path(unquote(target.path))
            if not path.is_file():
                problems.append(f"missing image file: {src.group(1)}")
    for label in _CITATION_LIST.findall(dom):
        problems.append(
            f"reference [{label}] rendered as a list (initial read as a letter)"
        )
    probe = dict(_PROBE.findall(dom))
    if probe.get("broken-images", "0") not in ("", "0"):
        problems.append(f"images not loaded by the browser: {probe['broken-images']}")
    if probe.get("raw-tex", "0") not in ("", "0"):
        problems.append(f"math left untypeset by MathJax: {probe['raw-tex']}")
    name = page.relative_to(html_dir).with_suffix(".png").as_posix().replace("/", "__")
    shot = _chromium(
        browser,
        profile,
        f"--screenshot={shots / name}",
        "--window-size=1366,2200",
        url,
    )
    if shot.returncode != 0 or not (shots / name).is_file():
        problems.append("Chromium took no screenshot")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=DOCS / "_build" / "html")
    parser.add_argument("--no-build", action="store_true", help="check only")
    parser.add_argument("--shots", type=Path, default=DOCS / "_build" / "screenshots")
    parser.add_argument(
        "--skip-browser-if-missing",
        action="store_true",
        help="without Chromium, only build (with -W) and say that the pages "
        "were not looked at, instead of failing (used by .ci/run)",
    )
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None and not args.skip_browser_if_missing:
        sys.exit(f"docs/check.py: {NO_BROWSER}.")
    status = 0
    if not args.no_build and build(args.html) != 0:
        print("FAIL: the build had warnings or errors (see above)")
        status = 1
    if browser is None:
        print(
            f"\nSKIPPED the browser check: {NO_BROWSER}. Only the build "
            f"(warnings as errors) was checked: {'FAIL' if status else 'ok'}."
        )
        return status
    shutil.rmtree(args.shots, ignore_errors=True)
    args.shots.mkdir(parents=True)
    skip = ("_static", "_sources", "_images", "_downloads", "_modules")
    pages = sorted(
        p
        for p in args.html.rglob("*.html")
        if p.relative_to(args.html).parts[0] not in skip
        and p.name not in ("genindex.html", "search.html", "py-modindex.html")
    )
    failed = 0
    with tempfile.TemporaryDirectory(prefix="skam-docs-chromium-") as profile:
        for page in pages:
            problems = check_page(browser, profile, page, args.html, args.shots)
            rel = page.relative_to(args.html)
            if problems:
                failed += 1
                print(f"FAIL {rel}")
                for problem in problems[:10]:
                    print(f"     {problem}")
                if len(problems) > 10:
                    print(f"     ... and {len(problems) - 10} more")
            else:
                print(f"ok   {rel}")
    print(
        f"\n{len(pages) - failed}/{len(pages)} pages passed; screenshots in "
        f"{args.shots}"
    )
    return 1 if failed or status else 0


if __name__ == "__main__":
    sys.exit(main())
