"""sk_animals: scikit-learn image classifiers, a CNN from scratch versus ImageNet transfer."""

from importlib.metadata import PackageNotFoundError, version

from .datasets import (
    fetch_animals10,
    load_animals10,
    load_image_folder,
    make_image_dataset,
    make_image_folder,
    save_image_folder,
)
from .preprocessing import ImageLoader, ImageLoadError, find_bad_images

try:
    __version__ = version("sk-animals")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "ImageLoadError",
    "ImageLoader",
    "fetch_animals10",
    "find_bad_images",
    "load_animals10",
    "load_image_folder",
    "make_image_dataset",
    "make_image_folder",
    "save_image_folder",
]
