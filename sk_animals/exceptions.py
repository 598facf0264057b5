"""Every error sk_animals raises, in one module (as skorch keeps its own in ``exceptions``).

Each subclasses the built-in exception a caller already catches: a bad input is a
``ValueError``, a file that cannot be written or a folder in use is an ``OSError``. The
modules that raised them before keep importing them, so old imports go on working.
"""

__all__ = [
    "BadInputError",
    "FileWriteError",
    "ImageLoadError",
    "Interrupted",
    "NotEnoughImagesError",
    "ResumeError",
    "RunInProgressError",
    "SkAnimalsError",
    "StopEarly",
    "UsageError",
]


class SkAnimalsError(Exception):
    """Base class of every error sk_animals raises."""


class ImageLoadError(SkAnimalsError, ValueError):
    """Raised when one or more images cannot be read; lists every bad one.

    Attributes
    ----------
    errors : list of (int, str, str)
        One ``(position, name, reason)`` per bad item; ``name`` is the path for files.
    """

    def __init__(self, errors):
        self.errors = list(errors)
        shown = "\n".join(f"  [{i}] {name}: {reason}" for i, name, reason in self.errors[:50])
        more = f"\n  ... and {len(self.errors) - 50} more" if len(self.errors) > 50 else ""
        super().__init__(
            f"{len(self.errors)} image(s) could not be loaded:\n{shown}{more}\n"
            "Remove or replace them before fitting: sk_animals.preprocessing.find_bad_images(X) "
            "lists them, and load_image_folder(..., verify=True) skips them."
        )

    def __reduce__(self):  # from joblib's workers: the errors, not the message
        return type(self), (self.errors,)


class BadInputError(SkAnimalsError, ValueError):
    """An argument or the data cannot be used, found before any long work starts.

    Attributes
    ----------
    parameter : str or None
        The argument at fault, where there is one.
    """

    def __init__(self, message, parameter=None):
        super().__init__(message)
        self.parameter = parameter

    def __reduce__(self):
        return type(self), (str(self), self.parameter)


class NotEnoughImagesError(BadInputError):
    """A class has too few images for the folds and the hold-out (found before training)."""


class ResumeError(BadInputError):
    """A run's folder holds another run: other arguments, or none to resume.

    Attributes
    ----------
    changed : list of (str, object, object)
        Each argument that changed: its name, the earlier value and this one.
    """

    def __init__(self, message, changed=()):
        super().__init__(message)
        self.changed = list(changed)
        self.parameter = None

    def __reduce__(self):
        return type(self), (str(self), self.changed)


class RunInProgressError(SkAnimalsError, OSError):
    """Another process is writing into the same run folder."""


class FileWriteError(SkAnimalsError, OSError):
    """A file could not be written; nothing is left under its name.

    ``str()`` names the file and the reason, e.g. "no space left on device writing
    report/report.html"; ``errno`` and ``filename`` are those of the ``OSError`` behind it.
    """

    def __str__(self):
        reason = (self.strerror or "").lower() or "error"
        return f"{reason} writing {self.filename}"


class StopEarly(SkAnimalsError):
    """A callback (skorch's EarlyStopping) ended training on purpose (caught by the fit)."""


class UsageError(SkAnimalsError, ValueError):
    """A bad command-line option, found before any work: one line, exit code 2."""


class Interrupted(SkAnimalsError, KeyboardInterrupt):
    """Ctrl-C during a command: one line saying what was kept, exit code 130."""
