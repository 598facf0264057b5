"""The installed package's version, in a module of its own so that any module may import it."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sk-animals")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
