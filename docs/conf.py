"""Sphinx configuration: numpydoc, autosummary and sphinx-gallery."""

from importlib.metadata import version as _version

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
exclude_patterns = ["_build", "README.md"]
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
}
nitpicky = False
suppress_warnings = ["config.cache"]
