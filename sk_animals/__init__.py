"""sk_animals: scikit-learn image classifiers, a CNN from scratch versus ImageNet transfer.

The public names are imported on first use (PEP 562), so that ``import sk_animals`` and the
``sk-animals --help`` command stay fast; ``from sk_animals import ImageLoader`` works as usual.
"""

import importlib

from ._version import __version__  # noqa: F401  (the package's version)

#: Every public object and its one documented home; each is imported on first use.
_HOMES = {
    # loading images and data sets
    "ImageLoader": "preprocessing",
    "find_bad_images": "preprocessing",
    "fetch_animals10": "datasets",
    "load_animals10": "datasets",
    "load_folder": "datasets",
    "load_image_csv": "datasets",
    "load_image_folder": "datasets",
    "make_image_dataset": "datasets",
    "make_image_folder": "datasets",
    "save_image_folder": "datasets",
    "audit_images": "audit",
    "dedupe": "audit",
    "find_label_issues": "audit",
    # estimators
    "ImageClassifier": "_base",
    "ScratchCNNClassifier": "scratch",
    "TransferClassifier": "transfer",
    "AlexNetTransferClassifier": "transfer",
    "PretrainedFeatures": "transfer",
    "LinearProbe": "transfer",
    "loader_for": "transfer",
    # comparing, tuning, saving
    "Approach": "protocols",
    "compare": "evaluation",
    "paper_protocol": "protocols",
    "recommended_protocol": "protocols",
    "demo_protocol": "protocols",
    "tune": "tuning",
    "find_images": "prediction",
    "predict_files": "prediction",
    "write_predictions": "prediction",
    "save": "persistence",
    "load": "persistence",
    "model_card": "cards",
    "write_model_card": "cards",
    # deploying: ONNX export and the torch-free runner
    "export_onnx": "export",
    "onnx_metadata": "deploy",
    "predict_onnx": "deploy",
    # explaining: class-activation maps
    "explain": "explanations",
    # errors
    "FileWriteError": "exceptions",
    "ImageLoadError": "exceptions",
    "NotEnoughImagesError": "exceptions",
    "ResumeError": "exceptions",
    "RunInProgressError": "exceptions",
}

__all__ = sorted(_HOMES)


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_HOMES])
