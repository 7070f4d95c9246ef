"""`make docs`: the site builds with warnings as errors, holds every doc and its figures, and its API reference
documents every public name of vaelab, vaelab.viz, vaelab.sklearn, the parts and the models."""

import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILD_NEEDS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers")  # the docs extra
REFERENCE = {  # reference page -> the package it documents and whether its submodules are documented one by one
    "vaelab": ("vaelab", False),
    "viz": ("vaelab.viz", False),
    "sklearn": ("vaelab.sklearn", False),
    "parts": ("vaelab.parts", True),
    "models": ("vaelab.models", True),
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = [name for name in BUILD_NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run `make install-test` (it installs the docs extra)")
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stderr[-4000:]}"
    return out


class _Headings(HTMLParser):
    """The objects a reference page documents: (id, symbol kind) of each mkdocstrings heading."""

    def __init__(self):
        super().__init__()
        self.objects: list[tuple[str, str | None]] = []
        self._open: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if re.fullmatch(r"h[1-6]", tag) and "doc-heading" in classes and attrs.get("id"):
            self._open = attrs["id"]
            self.objects.append((self._open, None))
        elif tag == "code" and self._open and "doc-symbol-heading" in classes:
            kinds = [c.removeprefix("doc-symbol-") for c in classes if c.startswith("doc-symbol-")]
            kind = next((k for k in kinds if k != "heading"), None)
            self.objects[-1] = (self._open, kind)

    def handle_endtag(self, tag):
        if re.fullmatch(r"h[1-6]", tag):
            self._open = None


def documented(site: Path, page: str) -> set[str]:
    """Ids of the objects (not modules) that reference/PAGE documents."""
    parser = _Headings()
    parser.feed((site / "reference" / page / "index.html").read_text(encoding="utf-8"))
    return {object_id for object_id, kind in parser.objects if kind != "module"}


def public_names(module) -> list[str]:
    """``__all__``, or else the classes and functions a module defines under a name without a leading ``_``."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    defined = {
        name: value for name, value in vars(module).items() if inspect.isclass(value) or inspect.isfunction(value)
    }
    return [name for name, value in defined.items() if not name.startswith("_") and value.__module__ == module.__name__]


def undocumented(site: Path, page: str) -> list[str]:
    package_name, by_module = REFERENCE[page]
    package = importlib.import_module(package_name)
    ids = documented(site, page)
    # a package re-exports names defined in its submodules: each is documented under one path or the other
    missing = [
        f"{package_name}.{name}" for name in public_names(package) if not any(i.endswith(f".{name}") for i in ids)
    ]
    if by_module:
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package_name}.{info.name}")
            missing += [f"{module.__name__}.{n}" for n in public_names(module) if f"{module.__name__}.{n}" not in ids]
    return missing


@pytest.mark.parametrize("page", REFERENCE)
def test_the_api_reference_documents_every_public_name(site, page):
    missing = undocumented(site, page)
    assert not missing, f"docs/reference/{page}.md does not document {', '.join(missing)} (add a `::: module` line)"


def signature(site: Path, page: str, object_id: str) -> str:
    """The text of the signature that reference/PAGE shows for OBJECT_ID."""
    html = (site / "reference" / page / "index.html").read_text(encoding="utf-8")
    block = re.search(rf'id="{re.escape(object_id)}".*?<div class="doc-signature[^>]*>(.*?)</pre>', html, re.S)
    assert block, f"reference/{page} shows no signature for {object_id}"
    return re.sub(r"<[^>]+>", "", block[1])


def test_signatures_name_the_parameters(site):
    assert re.search(r"train\(\s*config.*overrides.*resume.*nets", signature(site, "vaelab", "vaelab.train"), re.S)
    assert re.search(r"load_run\(\s*path.*device.*nets", signature(site, "vaelab", "vaelab.load_run"), re.S)
    # the estimators' __init__ is built at import: the reference shows it, with the model's keys and defaults
    vae = signature(site, "sklearn", "vaelab.sklearn.VAE")
    assert "latent_dim=16" in vae and "kl_warmup_steps=0" in vae and "random_state=None" in vae
    assert "beta=4.0" in signature(site, "sklearn", "vaelab.sklearn.BetaVAE")


def test_every_doc_is_in_the_nav_and_built(site):
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    in_nav = set(re.findall(r"[\w/.-]+\.md", str(config["nav"])))
    for doc in sorted(DOCS.glob("*.md")):
        assert doc.name in in_nav, f"mkdocs.yml's nav does not list docs/{doc.name}"
        built = site / ("index.html" if doc.stem == "index" else f"{doc.stem}/index.html")
        assert built.is_file(), f"no page built for docs/{doc.name}"


def figures_shown(doc: Path) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\((figures/[^)\s]+)\)", doc.read_text(encoding="utf-8"))


def test_every_figure_a_doc_shows_is_on_its_page(site):
    shown = 0
    for doc in sorted(DOCS.glob("*.md")):
        figures = figures_shown(doc)
        if not figures:
            continue
        page = site / doc.stem / "index.html"
        sources = re.findall(r'<img[^>]*\ssrc="([^"]+)"', page.read_text(encoding="utf-8"))
        for figure in figures:
            assert f"../{figure}" in sources, f"docs/{doc.name} shows {figure}, its page has no such image"
            assert (site / figure).stat().st_size == (DOCS / figure).stat().st_size
            shown += 1
    assert shown >= 10  # the guide alone shows more


def test_links_to_repository_files_point_at_copies_in_the_site(site):
    """docs/X.md's ``](../configs/vae-mlp.yaml)`` works on GitHub; in the site it points at repo/configs/...,
    a copy of the file (docs/hooks/repo_links.py)."""
    copies = 0
    for doc in sorted(DOCS.glob("*.md")):
        page = (site / ("" if doc.stem == "index" else doc.stem) / "index.html").read_text(encoding="utf-8")
        for target in re.findall(r"\]\(\.\./([^)#\s]+)", doc.read_text(encoding="utf-8")):
            assert f'href="../repo/{target}' in page, f"docs/{doc.name} links ../{target}; its page does not"
            assert (site / "repo" / target).read_bytes() == (ROOT / target).read_bytes()
            copies += 1
    assert copies >= 5  # configs, bench results, the sklearn walkthrough


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium; `make test` does it as root)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.mark.parametrize("doc", [doc.name for doc in sorted(DOCS.glob("*.md")) if figures_shown(doc)])
def test_a_page_with_figures_opens_cleanly_in_headless_chromium(site, browser, doc):
    """Every figure decoded, no console error, nothing fetched from outside the site (the theme's fonts are off)."""
    page = browser.new_page()
    errors, requests = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto((site / Path(doc).stem / "index.html").as_uri(), wait_until="load")
    images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
    page.close()
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert len(images) == len(figures_shown(DOCS / doc))
    assert all(done and width > 0 for _, done, width in images), images
