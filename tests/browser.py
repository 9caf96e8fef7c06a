"""Headless-Chromium helpers for checking a built MkDocs site.

This is a helper module for the browser tests, not a test file itself.

The site is served from a local ``http.server`` on 127.0.0.1 (random free
port) and opened in headless Chromium through Selenium 4, using an explicit
chromedriver so that selenium-manager never tries to download a driver or a
browser. Requests to any host other than 127.0.0.1 are made to fail at DNS
resolution, so a page that silently depends on the network (web fonts, CDN
scripts, ...) shows up as console errors and in ``external_requests``
instead of passing or failing depending on where the tests run.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_CHROMIUM = "/usr/bin/chromium"
DEFAULT_CHROMEDRIVER = "/usr/bin/chromedriver"

PAGE_TIMEOUT_S = 20.0
# Headless Chromium keeps its window at least this wide; a narrower page is emulated.
MIN_WINDOW_WIDTH = 500

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # required when running as root (e.g. in containers)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-default-browser-check",
    "--disable-extensions",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    # Everything except the local server fails to resolve: no network access.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


# --------------------------------------------------------------------------
# Locating the browser
# --------------------------------------------------------------------------


def _find_executable(env_var: str, default: str, names: list[str]) -> str | None:
    override = os.environ.get(env_var)
    if override:
        return override if os.path.isfile(override) and os.access(override, os.X_OK) else None
    if os.path.isfile(default) and os.access(default, os.X_OK):
        return default
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def find_chromium() -> tuple[str, str] | None:
    """Return ``(chromium, chromedriver)`` paths, or None if either is missing.

    ``GEN_CHROMIUM`` / ``GEN_CHROMEDRIVER`` override the search.
    """
    chromium = _find_executable(
        "GEN_CHROMIUM",
        DEFAULT_CHROMIUM,
        ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"],
    )
    chromedriver = _find_executable("GEN_CHROMEDRIVER", DEFAULT_CHROMEDRIVER, ["chromedriver"])
    if chromium is None or chromedriver is None:
        return None
    return chromium, chromedriver


# --------------------------------------------------------------------------
# Local HTTP server
# --------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


@contextlib.contextmanager
def serve_directory(site_dir: Path) -> Iterator[str]:
    """Serve ``site_dir`` on 127.0.0.1 (random free port); yield the base URL."""
    site_dir = Path(site_dir).resolve()
    if not site_dir.is_dir():
        raise FileNotFoundError(f"site directory not found: {site_dir}")
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------
# Browser
# --------------------------------------------------------------------------


@contextlib.contextmanager
def chromium_driver(width: int = 1280, height: int = 2000) -> Iterator[Any]:
    """Start one headless Chromium (fresh profile) and yield the webdriver."""
    found = find_chromium()
    if found is None:
        raise RuntimeError(
            "chromium/chromedriver not found (set GEN_CHROMIUM and GEN_CHROMEDRIVER)"
        )
    chromium, chromedriver = found

    # Must be set before selenium's webdriver is imported/used, so that
    # selenium-manager never tries to reach the network.
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="gen-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={width},{height}")
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        service = Service(executable_path=chromedriver)
        driver = webdriver.Chrome(service=service, options=options)
        try:
            if width < MIN_WINDOW_WIDTH:  # a phone: the window cannot be that narrow, the page can
                driver.execute_cdp_cmd(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
                )
            driver.set_page_load_timeout(60)
            driver.set_script_timeout(30)
            yield driver
        finally:
            driver.quit()


_PREPARE_IMAGES_JS = """
const imgs = Array.from(document.images);
for (const img of imgs) {
  if (img.loading === 'lazy') { img.loading = 'eager'; }
  img.scrollIntoView({block: 'center'});
}
window.scrollTo(0, 0);
return imgs.length;
"""

_READY_JS = """
if (document.readyState !== 'complete') { return false; }
const math = Array.from(document.querySelectorAll('.arithmatex'));
if (!math.every(el => el.querySelector('.katex') !== null)) { return false; }
return Array.from(document.images).every(img => img.complete);
"""

_COLLECT_JS = """
const math = Array.from(document.querySelectorAll('.arithmatex'));
const typeset = math.filter(
  el => el.querySelector('.katex') !== null && el.querySelector('.katex-error') === null
);
const imgs = Array.from(document.images);
const broken = imgs
  .filter(img => !img.complete || img.naturalWidth === 0)
  .map(img => img.src || img.getAttribute('src') || '');
const content = document.querySelector('.md-content');
// Links within the site (navigation and text): where they point, without the fragment.
const links = Array.from(document.querySelectorAll('a[href]'))
  .map(a => a.href.split('#')[0])
  .filter(href => href.startsWith(location.origin === 'null' ? 'file:' : location.origin));
// Enlarged figures: shown at the width the page gives them (a whole multiple of their pixels)
// where it fits (not those a viewer stands in for: hidden while it shows).
const enlarged = Array.from(document.querySelectorAll('figure img[width]'))
  .filter(img => !img.closest('.viewer-ready .viewer-still')).map(img => ({
  src: img.getAttribute('src'), natural: img.naturalWidth, width: Number(img.getAttribute('width')),
  shown: img.getBoundingClientRect().width, rendering: getComputedStyle(img).imageRendering,
}));
const captions = Array.from(document.querySelectorAll('figure figcaption'))
  .map(c => c.textContent.trim().split(' ').slice(0, 2).join(' '));
return {
  math: math.length,
  math_typeset: typeset.length,
  images: imgs.length,
  broken_images: broken,
  title: document.title,
  links: Array.from(new Set(links)),
  enlarged: enlarged,
  figure_labels: captions,
  lightbox_links: document.querySelectorAll('a.glightbox').length,
  page_width: document.documentElement.scrollWidth,
  window_width: window.innerWidth,
  // (A viewer's strip of frames is wider than the window it shows one frame through, .scrub-box.)
  overflowing: Array.from(
      document.querySelectorAll('.md-typeset table, .md-typeset pre, .md-typeset img'))
    .filter(el => el.getBoundingClientRect().right
                    > (content ? content.getBoundingClientRect().right : window.innerWidth) + 1
                  && !el.closest('.md-typeset__table, .highlight, .arithmatex, .scrub-box'))
    .map(el => el.tagName + ' ' + (el.getAttribute('src') || el.textContent.slice(0, 40))),
};
"""

# Click the first figure and report whether the lightbox shows it enlarged.
_LIGHTBOX_JS = """
const link = document.querySelector('figure a.glightbox');
if (!link) { return {opened: false, reason: 'no lightbox link'}; }
const small = link.querySelector('img').getBoundingClientRect().width;
link.click();
return {small: small};
"""

_LIGHTBOX_OPEN_JS = """
const img = document.querySelector('.glightbox-container .gslide.current img');
if (!img || !img.complete || img.naturalWidth === 0) { return null; }
// The layout width: the opening animation scales the box.
return {opened: true, width: img.offsetWidth};
"""


def _drain_logs(driver: Any) -> None:
    for kind in ("browser", "performance"):
        with contextlib.suppress(Exception):
            driver.get_log(kind)


def _external_requests(driver: Any, base_url: str) -> list[str]:
    urls: list[str] = []
    try:
        entries = driver.get_log("performance")
    except Exception:
        return urls
    for entry in entries:
        try:
            message = json.loads(entry["message"])["message"]
        except (KeyError, TypeError, ValueError):
            continue
        if message.get("method") != "Network.requestWillBeSent":
            continue
        url = message.get("params", {}).get("request", {}).get("url", "")
        # Only network schemes count; chrome://, data:, blob: etc. are internal.
        if not url.startswith(("http:", "https:", "ws:", "wss:", "ftp:")):
            continue
        if url.startswith(base_url):
            continue
        if url not in urls:
            urls.append(url)
    return urls


def _load_page(driver: Any, base_url: str, page: str, timeout: float = PAGE_TIMEOUT_S) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base_url + page.lstrip("/"))
    deadline = time.monotonic() + timeout
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
    except TimeoutException:
        pass
    driver.execute_script(_PREPARE_IMAGES_JS)
    remaining = max(0.5, deadline - time.monotonic())
    try:
        WebDriverWait(driver, remaining, poll_frequency=0.1).until(
            lambda d: d.execute_script(_READY_JS)
        )
    except TimeoutException:
        pass


def _inspect_loaded(driver: Any, base_url: str) -> dict:
    result = dict(driver.execute_script(_COLLECT_JS))
    # Report broken images by their resolved URL relative to the site root
    # (e.g. "part-b/figures/x.png"): stable across the random server port and
    # across Material's instant navigation, which rewrites src attributes to
    # absolute URLs at runtime.
    result["links"] = [
        href[len(base_url) :] if href.startswith(base_url) else href for href in result["links"]
    ]
    result["broken_images"] = [
        src[len(base_url) :] if src.startswith(base_url) else src
        for src in (result.get("broken_images") or [])
    ]
    errors: list[str] = []
    with contextlib.suppress(Exception):
        for entry in driver.get_log("browser"):
            if entry.get("level") == "SEVERE":
                errors.append(str(entry.get("message", "")))
    result["console_errors"] = errors
    result["external_requests"] = _external_requests(driver, base_url)
    return result


@contextlib.contextmanager
def open_from_disk(site_dir: Path) -> Iterator[str]:
    """The site as a reader opens it from disk: its file:// address, ending in a slash."""
    site_dir = Path(site_dir).resolve()
    if not site_dir.is_dir():
        raise FileNotFoundError(f"site directory not found: {site_dir}")
    yield site_dir.as_uri() + "/"


def open_lightbox(driver: Any, timeout: float = 10.0) -> dict:
    """Click the page's first figure; the lightbox's image and its width, or why it did not open."""
    first = driver.execute_script(_LIGHTBOX_JS)
    if "reason" in first:
        return first
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = driver.execute_script(_LIGHTBOX_OPEN_JS)
        if shown:
            return {**first, **shown}
        time.sleep(0.1)
    return {**first, "opened": False, "reason": "no image in the lightbox"}


def inspect_site(
    site_dir: Path,
    pages: list[str],
    *,
    over: str = "http",
    width: int = 1280,
    lightbox: bool = False,
) -> dict[str, dict]:
    """Open each page of the built site in headless Chromium and report on it.

    ``over`` is "http" (served from 127.0.0.1) or "file" (opened from disk).
    Returns ``{page: {"math", "math_typeset", "images", "broken_images",
    "console_errors", "title", "external_requests", "links", "enlarged",
    "figure_labels", "lightbox_links", "page_width", "window_width",
    "overflowing"}}`` (and "lightbox", with ``lightbox=True``) where ``math`` counts
    ``.arithmatex`` elements, ``math_typeset`` those containing a ``.katex``
    element and no ``.katex-error``, ``broken_images`` lists the ``src`` of
    images that did not load (resolved, relative to the site root, e.g.
    ``"part-b/missing.png"``), ``console_errors`` holds the SEVERE browser log
    messages and ``external_requests`` the URLs requested from anywhere other
    than the local server (all of which fail by construction).
    """
    opened = serve_directory(Path(site_dir)) if over == "http" else open_from_disk(Path(site_dir))
    results: dict[str, dict] = {}
    with opened as base_url, chromium_driver(width) as driver:
        for page in pages:
            _drain_logs(driver)
            _load_page(driver, base_url, page)
            results[page] = _inspect_loaded(driver, base_url)
            if lightbox:
                results[page]["lightbox"] = open_lightbox(driver)
    return results


def screenshot(
    site_dir: Path, page: str, out_png: Path, width: int = 1280, height: int = 2000
) -> Path:
    """Save a screenshot of ``page`` (up to ``height`` pixels tall) to ``out_png``."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with serve_directory(Path(site_dir)) as base_url, chromium_driver(width, height) as driver:
        _load_page(driver, base_url, page)
        doc_height = driver.execute_script(
            "return Math.max(document.documentElement.scrollHeight,"
            " document.body ? document.body.scrollHeight : 0)"
        )
        try:
            doc_height = int(doc_height)
        except (TypeError, ValueError):
            doc_height = height
        driver.set_window_size(width, max(400, min(height, doc_height)))
        driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.3)  # let layout settle after the resize
        if not driver.save_screenshot(str(out_png)):
            raise RuntimeError(f"failed to save screenshot to {out_png}")
    return out_png


# --------------------------------------------------------------------------
# Viewers (site_assets/javascripts/viewers.js)
# --------------------------------------------------------------------------

_VIEWERS_JS = """
const roots = Array.from(document.querySelectorAll('[data-viewer]'));
return roots.map(r => ({kind: r.getAttribute('data-viewer'),
  ready: r.classList.contains('viewer-ready'),
  still_shown: Array.from(r.querySelectorAll('.viewer-still'))
    .some(el => el.getBoundingClientRect().width > 0)}));
"""

# What a viewer shows now, by kind: enough to tell whether driving it changed it.
_SHOWN_JS = """
const root = arguments[0];
const box = el => el ? el.getBoundingClientRect() : null;
const kind = root.getAttribute('data-viewer');
if (kind === 'anagram') {
  const tiles = Array.from(root.querySelectorAll('.anagram-tile'));
  return tiles.slice(0, 2).map(t => ({turned: t.getAttribute('data-turned'),
    pressed: t.getAttribute('aria-pressed'), label: t.getAttribute('aria-label'),
    transform: getComputedStyle(t.querySelector('img')).transform,
    filter: getComputedStyle(t.querySelector('img')).filter}));
}
if (kind === 'zoom') {
  const near = root.querySelector('.zoom-near'), far = root.querySelector('.zoom-far');
  return {position: root.getAttribute('data-position'), near_width: box(near).width,
    near_opacity: getComputedStyle(near).opacity, far_opacity: getComputedStyle(far).opacity,
    far_rendering: getComputedStyle(far).imageRendering, far_natural: far.naturalWidth,
    label: root.querySelector('input[type=range]').getAttribute('aria-valuetext')};
}
if (kind === 'compare') {
  const tile = root.querySelector('.compare-tile');
  return {split: tile.getAttribute('data-split'),
    clip: getComputedStyle(tile.querySelector('.compare-before')).clipPath,
    label: tile.querySelector('input').getAttribute('aria-label')};
}
// scrub: a strip's offset, or which of the root's figures shows
const strip = root.querySelector('.scrub-strip');
const shown = Array.from(root.children).filter(c => c.tagName === 'FIGURE' && box(c).width > 0);
const stage = strip ? root : root.previousElementSibling;
return {index: root.getAttribute('data-index'),
  transform: strip ? getComputedStyle(strip).transform : null,
  strip_loaded: strip ? strip.complete && strip.naturalWidth > 0 : null,
  shown: shown.map(f => f.querySelector('img').getAttribute('src')),
  readout: stage.querySelector('.viewer-readout').textContent,
  label: stage.querySelector('input[type=range]').getAttribute('aria-valuetext'),
  playing: stage.querySelector('.viewer-play') ?
    stage.querySelector('.viewer-play').getAttribute('aria-pressed') : null};
"""


def _slider(driver: Any, root: Any) -> Any:
    """The range input that drives a viewer: inside it, or (a sweep's) just before it."""
    found = driver.execute_script(
        "const r = arguments[0]; return r.querySelector('input[type=range]')"
        " || r.previousElementSibling.querySelector('input[type=range]');",
        root,
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", found)
    return found


def _drive(driver: Any, root: Any) -> list[tuple[str, Any]]:
    """Drive one viewer as a reader would; what it showed before and after each action."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    def shown(settle: float = 0.0):
        time.sleep(settle)
        return driver.execute_script(_SHOWN_JS, root)

    kind = root.get_attribute("data-viewer")
    steps = [("start", shown())]
    if kind == "anagram":
        first, second = root.find_elements("css selector", ".anagram-tile")[:2]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", first)
        ActionChains(driver).move_to_element(first).perform()
        steps.append(("hover", shown(0.9)))
        heading = driver.find_element("css selector", "h1")
        ActionChains(driver).move_to_element(heading).perform()
        steps.append(("pointer away", shown(0.9)))
        first.click()
        steps.append(("click", shown(0.9)))
        driver.execute_script("arguments[0].focus()", second)
        second.send_keys(Keys.ENTER)
        steps.append(("Enter on the second", shown(0.9)))
        second.send_keys(Keys.SPACE)
        steps.append(("Space on the second", shown(0.9)))
    elif kind == "zoom":
        slider = _slider(driver, root)
        for _ in range(20):
            slider.send_keys(Keys.ARROW_RIGHT)
        steps.append(("halfway", shown(0.5)))
        slider.send_keys(Keys.END)
        steps.append(("End", shown(0.5)))
    elif kind == "compare":
        slider = _slider(driver, root)
        for _ in range(10):
            slider.send_keys(Keys.ARROW_LEFT)
        steps.append(("ArrowLeft ×10", shown()))
    else:
        slider = _slider(driver, root)
        slider.send_keys(Keys.HOME)
        steps.append(("Home", shown()))
        slider.send_keys(Keys.ARROW_RIGHT)
        steps.append(("ArrowRight", shown()))
        play = driver.execute_script("return arguments[0].querySelector('.viewer-play')", root)
        if play is not None:
            play.click()
            steps.append(("play", shown(0.8)))
    return steps


def drive_viewers(
    site_dir: Path, pages: list[str], *, over: str = "http", width: int = 1280
) -> dict[str, dict]:
    """Open each page and drive the first viewer of each kind (and each sweep's first); per page:
    the viewers found, what each driven one showed step by step, and the page's console errors,
    requests off the machine and width."""
    opened = serve_directory(Path(site_dir)) if over == "http" else open_from_disk(Path(site_dir))
    results: dict[str, dict] = {}
    with opened as base_url, chromium_driver(width, 1000) as driver:
        for page in pages:
            _drain_logs(driver)
            _load_page(driver, base_url, page)
            found = driver.execute_script(_VIEWERS_JS)
            roots = driver.find_elements("css selector", "[data-viewer]")
            driven, seen = [], set()
            for root in roots:
                kind = root.get_attribute("data-viewer")
                series = kind == "scrub" and bool(
                    driver.execute_script(
                        "return !!arguments[0].querySelector('.viewer-play')", root
                    )
                )
                if (kind, series) in seen:
                    continue
                seen.add((kind, series))
                driven.append({"kind": kind, "steps": _drive(driver, root)})
            report = _inspect_loaded(driver, base_url)
            results[page] = {
                "viewers": found,
                "driven": driven,
                "console_errors": report["console_errors"],
                "external_requests": report["external_requests"],
                "page_width": report["page_width"],
                "window_width": report["window_width"],
                "overflowing": report["overflowing"],
                "figure_labels": report["figure_labels"],
                "lightbox_links": report["lightbox_links"],
            }
    return results


def transition_durations(site_dir: Path, page: str, *, reduced_motion: bool) -> list[str]:
    """The transition durations of the first anagram's image and the first hybrid's, opened from
    disk with the reader's system asking for reduced motion or not."""
    with open_from_disk(Path(site_dir)) as base_url, chromium_driver() as driver:
        driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {
                "features": [
                    {
                        "name": "prefers-reduced-motion",
                        "value": "reduce" if reduced_motion else "no-preference",
                    }
                ]
            },
        )
        _load_page(driver, base_url, page)
        return driver.execute_script(
            "return ['.anagram-tile img', '.zoom-near', '.zoom-far'].map(s =>"
            " getComputedStyle(document.querySelector(s)).transitionDuration);"
        )
