"""The documentation: the site builds strictly, the README stays a landing page, and the
reference pages list every registered model, family and catalog metric."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

# A landing page, not a manual: the reference lives in docs/.
README_MAX_CHARS = 12_000


def _mkdocs_build(root: Path, site: Path) -> subprocess.CompletedProcess:
    # The dev extras install MkDocs: when it is missing this fails, it is not skipped.
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_docs_build_strictly(tmp_path):
    done = _mkdocs_build(REPO, tmp_path / "site")
    assert done.returncode == 0, done.stderr
    nav = re.findall(r":\s*(\S+)\.md\s*$", (REPO / "mkdocs.yml").read_text(), re.MULTILINE)
    assert "index" in nav and len(nav) == len(set(nav))
    for page in nav:
        built = tmp_path / "site" / ("index.html" if page == "index" else f"{page}/index.html")
        assert built.is_file(), page


def test_docs_build_fails_on_a_broken_anchor(tmp_path):
    """--strict with the anchor validation of mkdocs.yml: a link to a missing section fails."""
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "index.md"
    page.write_text(page.read_text() + "\nSee [nowhere](spec.md#no-such-section).\n")
    done = _mkdocs_build(tmp_path, tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-section" in done.stderr


def test_readme_is_a_landing_page():
    text = (REPO / "README.md").read_text()
    assert len(text) <= README_MAX_CHARS, len(text)
    first_block = re.search(r"```[a-z]*\n(.*?)```", text, re.DOTALL).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands[:2] == ["make quickstart", "make test"]
    # Every relative link (pages, figure) points at a file of the repository.
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert any(link.startswith("docs/") for link in local)
    for link in local:
        assert (REPO / link).exists(), link


def _table_names(page: str) -> set[str]:
    """Names in the first column of the Markdown tables of docs/<page>."""
    text = (REPO / "docs" / page).read_text()
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", text, re.MULTILINE))


def test_every_model_has_a_row_on_the_models_page():
    from harness.models import MODELS

    missing = set(MODELS) - _table_names("models.md")
    assert not missing, f"docs/models.md has no table row for {sorted(missing)}"


def test_every_family_has_a_row_on_a_families_page():
    from harness.families import FAMILIES

    documented = _table_names("families.md") | _table_names("baselines.md")
    documented |= _table_names("vae.md")  # the encoder families of amortized models
    missing = set(FAMILIES) - documented
    assert not missing, f"docs/families.md, baselines.md, vae.md have no row for {sorted(missing)}"


def test_every_catalog_metric_is_on_the_metrics_page():
    from harness.metrics.catalog import METRICS

    text = (REPO / "docs" / "metrics.md").read_text()
    missing = [name for name in METRICS if f"`{name}`" not in text]
    assert not missing, f"docs/metrics.md does not mention {missing}"
