"""Every error in one module, each a built-in a caller catches, each surviving a pickle
(joblib's workers send them back to the parent)."""

import errno
import pickle

import pytest

from sk_animals import exceptions
from sk_animals.exceptions import (
    BadInputError,
    FileWriteError,
    ImageLoadError,
    NotEnoughImagesError,
    ResumeError,
    RunInProgressError,
    SkAnimalsError,
)

ERRORS = [
    (ImageLoadError([(3, "a.png", "truncated")]), ValueError),
    (BadInputError("budgets need a test set", "budgets"), ValueError),
    (NotEnoughImagesError("class 'cat' has 2 images", "cv"), ValueError),
    (ResumeError("other arguments", [("random_state", 0, 1)]), ValueError),
    (RunInProgressError("'out' is in use by a run (pid 1)"), OSError),
    (FileWriteError(errno.ENOSPC, "No space left on device", "out/report.html"), OSError),
]


@pytest.mark.parametrize("error, builtin", ERRORS, ids=[type(e).__name__ for e, _ in ERRORS])
def test_each_error_is_a_builtin_and_survives_a_pickle(error, builtin):
    assert isinstance(error, builtin) and isinstance(error, SkAnimalsError)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)
    for attribute in ("errors", "parameter", "changed", "errno", "filename"):
        assert getattr(again, attribute, None) == getattr(error, attribute, None)


def test_the_write_error_names_the_file_and_the_reason():
    error = FileWriteError(errno.ENOSPC, "No space left on device", "out/report.html")
    assert str(error) == "no space left on device writing out/report.html"


def test_every_error_is_listed():
    listed = {getattr(exceptions, name) for name in exceptions.__all__}
    defined = {
        v for v in vars(exceptions).values() if isinstance(v, type) and issubclass(v, Exception)
    }
    assert defined == listed
