"""Sphinx configuration: numpydoc, autosummary and sphinx-gallery."""

from importlib.metadata import version as _version
from pathlib import Path

project = "sk_animals"
author = "the sk_animals developers"
release = _version("sk-animals")
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
templates_path = ["_templates"]
# methods inherited from scikit-learn are documented there (their docstrings refer to
# labels of scikit-learn's own documentation)
autodoc_default_options = {
    "members": True,
    "exclude-members": "score, set_fit_request, set_partial_fit_request, "
    "set_predict_request, set_predict_proba_request, set_score_request, "
    "set_transform_request, set_output",
}
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
intersphinx_mapping = {}  # offline builds: no inventories are fetched
html_theme = "pydata_sphinx_theme"
html_title = "sk_animals"
exclude_patterns = ["_build", "_generated", "README.md"]
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
}
# Every cross-reference must resolve. The build is offline (no intersphinx inventories),
# so references into other packages cannot; they are ignored by package, and only those:
# a reference to one of our own objects that does not resolve still fails the build.
nitpicky = True
_EXTERNAL = (
    "dataclasses enum imagehash joblib matplotlib numpy optuna optuna_integration os pathlib "
    "PIL safetensors scipy skorch sklearn sqlalchemy torch torchvision tqdm uuid"
).split()
nitpick_ignore_regex = [(r"py:.*", rf"({'|'.join(_EXTERNAL)})(\..*)?")]
suppress_warnings = ["config.cache"]


def _write_backbone_table():
    """docs/_generated/backbones.rst: the Pareto front of torchvision's own metadata."""
    from sk_animals._backbones import backbone_table

    lines = [".. list-table::", "   :header-rows: 1", ""]
    header = ["Backbone", "ImageNet top-1 (%)", "GFLOPs", "Parameters (M)", "Input (px)"]
    lines += [f"   {'*' if i == 0 else ' '} - {h}" for i, h in enumerate(header)]
    for row in backbone_table():
        if row.pareto and row.gflops <= 25:  # beyond that, hardly a fine-tuning choice
            cells = [f"``{row.name}``", f"{row.acc1:.1f}", f"{row.gflops:g}", f"{row.params:g}"]
            cells.append(str(row.size))
            lines += [f"   {'*' if i == 0 else ' '} - {c}" for i, c in enumerate(cells)]
    out = Path(__file__).with_name("_generated") / "backbones.rst"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


_write_backbone_table()
