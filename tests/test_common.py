"""scikit-learn's common checks on every estimator, and their versions on images.

sklearn's checks feed 2-D numeric tables; our estimators take ``(n, height, width, 3)``
images (ImageLoader: files, bytes, PIL images or uint8 arrays). Each check that still
fails is listed with its own reason, one dict per estimator as imbalanced-learn does
(imblearn/utils/_test_common/instance_generator.py), and with the exception type and
message that show it fails for that reason: it is xfailed only when it raises that one,
and fails when it raises another or passes. The guarantee behind each check that fails
only because of the table is tested on images in the second half of this file (the
``see test_...`` in its reason).
"""

import copy
import pickle
import re
import warnings
from typing import NamedTuple

import joblib
import numpy as np
import pytest
import torch
import torchvision
from sklearn.base import clone, is_classifier
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.utils import get_tags
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils._testing import (
    assert_allclose,
    assert_array_equal,
    create_memmap_backed_data,
)
from sklearn.utils.estimator_checks import _check_name, _NotAnArray, parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

from sk_animals.datasets import make_image_dataset
from sk_animals.preprocessing import ImageLoader, ImageLoadError
from sk_animals.scratch import ScratchCNNClassifier
from sk_animals.transfer import AlexNetTransferClassifier, PretrainedFeatures, TransferClassifier

_QUIET = {"max_epochs": 1, "batch_size": 16, "random_state": 0, "verbose": 0}

#: Tiny configurations, one per estimator.
ESTIMATORS = {
    "scratch": ScratchCNNClassifier(width=4, depth=2, **_QUIET),
    "transfer": TransferClassifier("squeezenet1_1", weights=None, **_QUIET),
    # a frozen body leaves one small head for the optimizer to step
    "alexnet": AlexNetTransferClassifier(weights=None, freeze="body", **_QUIET),
    "features": PretrainedFeatures("squeezenet1_1", weights=None),
    "loader": ImageLoader(size=4),
}
CLASSIFIERS = ["scratch", "transfer", "alexnet"]
FITTED = [*CLASSIFIERS, "features"]  # everything that must be fitted before use
ALL = [*FITTED, "loader"]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Run torch on one thread here, and restore the setting after.

    Networks this small gain nothing from a second thread, and when the machine is busy
    OpenMP's threads wait on each other: a fit took 25 times longer with two threads.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- the checks that fail, and why -------------------------------------------------------


class _Xfail(NamedTuple):
    """Why a check fails, and the error that shows it fails for that reason only."""

    reason: str
    error: type  # the exact type of the exception the check raises
    match: str  # re.search'ed in its message and in that of each exception it chains


#: What a 2-D table meets first: the image check of fit, predict and transform.
_2D = r"X must be images of shape \(n_samples, height, width, 3\), got shape \(\d+, \d+\)"


def _refused(reason):
    """The image check refuses the table (a ValueError) where sklearn expects no error."""
    return _Xfail(reason, ValueError, _2D)


def _refused_in_assert(reason):
    """The image check refuses the table, inside the AssertionError sklearn raises from it."""
    return _Xfail(reason, AssertionError, _2D)


_TABLE = "feeds a 2-D float table; a CNN needs (n, height, width, 3) images"
_NO_FEATURES = (
    "n_features_in_ counts the columns of a 2-D X; images have no feature columns, so it "
    "is not set (image_size_ is, and predict and partial_fit check it: see "
    "test_image_size_is_checked)"
)

#: The same for the three classifiers: AlexNetTransferClassifier and TransferClassifier
#: only change ImageClassifier's defaults.
_CLASSIFIER_XFAIL = {
    "check_no_attributes_set_in_init": _Xfail(
        "skorch's NeuralNet.__init__ sets history_, initialized_ and virtual_params_, and "
        "ImageClassifier's iterator_train__shuffle=True default is a skorch prefixed "
        "parameter passed through **kwargs, outside the signature",
        AssertionError,
        r"Found attributes \['history_', 'initialized_', 'iterator_train__shuffle', "
        r"'virtual_params_'\]\.$",
    ),
    "check_set_params": _Xfail(
        "skorch lists every attribute not ending in '_' as a parameter, its private "
        "_params_to_validate set too; the check sets that to -inf and skorch's next "
        "set_params fails, as it does for a plain skorch NeuralNetClassifier: see "
        "test_invalid_params_wait_for_fit",
        AttributeError,
        r"^'float' object has no attribute 'add'$",
    ),
    "check_fit_score_takes_y": _refused(_TABLE),
    "check_estimators_overwrite_params": _refused(f"{_TABLE}: see test_fit_keeps_params"),
    "check_dont_overwrite_parameters": _refused(f"{_TABLE}: see test_fit_keeps_params"),
    "check_estimators_fit_returns_self": _refused(f"{_TABLE}: see test_fit_returns_self"),
    "check_readonly_memmap_input": _refused(f"{_TABLE}: see test_input_containers[memmap]"),
    "check_n_features_in_after_fitting": _refused(f"{_TABLE}; and {_NO_FEATURES}"),
    "check_n_features_in": _refused(f"{_TABLE}; and {_NO_FEATURES}"),
    "check_positive_only_tag_during_fit": _refused_in_assert(
        f"{_TABLE}; and the centred iris data is negative, while images are uint8 or float "
        "in [0, 1] (refused 'outside [0, 1]', not sklearn's 'Negative values in data' that "
        "the positive_only tag would ask for)"
    ),
    "check_estimators_dtypes": _refused(
        f"{_TABLE}; and int32/int64 X is refused by design (images are uint8, or float in "
        "[0, 1]): see test_dtypes"
    ),
    "check_complex_data": _refused_in_assert(
        f"{_TABLE}, refused as such, not in sklearn's 'Complex data not supported' words"
    ),
    "check_dtype_object": _refused(
        f"{_TABLE}; and object X is refused by design (uint8 or float)"
    ),
    "check_estimators_empty_data_messages": _refused_in_assert(
        f"{_TABLE} of shape (12, 0) and wants sklearn's '0 feature(s)' words; an empty "
        "image batch is refused with 'X is empty: found 0 images': see test_empty_data"
    ),
    "check_pipeline_consistency": _refused(_TABLE),
    "check_estimators_nan_inf": _refused_in_assert(f"{_TABLE}: see test_nan_inf"),
    "check_estimators_pickle": _refused(f"{_TABLE}: see test_pickle_round_trip"),
    "check_f_contiguous_array_estimator": _refused(
        f"{_TABLE}: see test_input_containers[fortran]"
    ),
    "check_classifier_data_not_an_array": _refused(
        f"{_TABLE}: see test_input_containers[not_an_array]"
    ),
    "check_classifiers_one_label": _refused_in_assert(
        f"{_TABLE}: see test_bad_targets[one_label]"
    ),
    "check_classifiers_one_label_sample_weights": _refused_in_assert(
        f"{_TABLE}: see test_sample_weight_is_refused"
    ),
    "check_classifiers_classes": _refused(f"{_TABLE}: see test_string_classes, test_int_classes"),
    "check_estimators_partial_fit_n_features": _refused(
        f"{_TABLE}: see test_image_size_is_checked"
    ),
    "check_classifiers_train": _refused(
        f"{_TABLE}; and it wants a training accuracy above 0.83, which one epoch of these "
        "tiny networks does not reach (a full fit learns: test_scratch.py, test_transfer.py)"
    ),
    "check_classifiers_regression_target": _refused_in_assert(
        f"{_TABLE}: see test_bad_targets[continuous]"
    ),
    "check_supervised_y_2d": _refused(f"{_TABLE}: see test_supervised_y_2d"),
    "check_class_weight_classifiers": _refused(_TABLE),
    "check_methods_sample_order_invariance": _refused(
        f"{_TABLE}: see test_sample_order_invariance"
    ),
    "check_methods_subset_invariance": _refused(f"{_TABLE}: see test_subset_invariance"),
    "check_fit2d_1sample": _refused_in_assert(
        f"{_TABLE} of one row and wants '1 sample' or 'one class'; one image is one class, "
        "refused with 'y has a single class': see test_bad_targets[one_label]"
    ),
    "check_fit2d_1feature": _refused_in_assert(
        f"{_TABLE} of one column; images have no feature columns"
    ),
    "check_dict_unchanged": _refused(f"{_TABLE}: see test_dict_unchanged_by_predict"),
    "check_fit_idempotent": _refused(f"{_TABLE}: see test_fit_idempotent"),
    "check_fit_check_is_fitted": _refused(f"{_TABLE}: see test_unfitted"),
    "check_fit2d_predict1d": _refused(f"{_TABLE}: see test_one_image_needs_the_batch_axis"),
    "check_requires_y_none": _Xfail(  # sklearn's ValueError, raised from ours
        f"{_TABLE}, refused before y is looked at: see test_bad_targets[none]",
        ValueError,
        _2D,
    ),
}

# What sklearn's checks say when a transformer's fit accepts what it should refuse.
_DID_NOT_RAISE = r"^Did not raise: \[<class 'ValueError'>\]$"
_NO_N_FEATURES_IN = r"\.fit\(\)` does not set the `n_features_in_` attribute"
_BARE_ASSERT = r"^$"  # check_n_features_in's assert hasattr(estimator, "n_features_in_")

_FEATURES_TABLE = "feeds a 2-D float table; the backbone needs (n, height, width, 3) images"
_FIT_LOADS = (
    "fit loads the backbone and does not read X (fit(X=None) is allowed); transform validates X"
)

_FEATURES_XFAIL = {
    "check_fit_score_takes_y": _refused(_FEATURES_TABLE),
    "check_n_features_in_after_fitting": _Xfail(
        f"{_FIT_LOADS}, and images have no feature columns", AssertionError, _NO_N_FEATURES_IN
    ),
    "check_n_features_in": _Xfail(
        f"{_FIT_LOADS}, and images have no feature columns", AssertionError, _BARE_ASSERT
    ),
    "check_estimators_dtypes": _refused(
        f"{_FEATURES_TABLE}; and int32/int64 X is refused by design: see test_dtypes"
    ),
    "check_complex_data": _Xfail(
        f"{_FIT_LOADS}, so complex X passes fit", AssertionError, _DID_NOT_RAISE
    ),
    "check_dtype_object": _refused(f"{_FEATURES_TABLE}; and object X is refused by design"),
    "check_estimators_empty_data_messages": _Xfail(
        f"{_FIT_LOADS}: see test_empty_data",
        AssertionError,
        "does not raise a ValueError when an empty data is used to train",
    ),
    "check_estimators_nan_inf": _Xfail(
        f"{_FIT_LOADS}: see test_nan_inf",
        AssertionError,
        "doesn't check for NaN and inf in fit",
    ),
    "check_estimator_sparse_tag": _Xfail(
        f"{_FIT_LOADS}, so sparse X passes fit",
        AssertionError,
        "didn't fail when fitted on sparse data",
    ),
    "check_estimators_pickle": _refused(f"{_FEATURES_TABLE}: see test_pickle_round_trip"),
    "check_f_contiguous_array_estimator": _refused(
        f"{_FEATURES_TABLE}: see test_input_containers[fortran]"
    ),
    "check_transformer_data_not_an_array": _refused(
        f"{_FEATURES_TABLE}: see test_input_containers[not_an_array]"
    ),
    "check_transformer_general": _refused(_FEATURES_TABLE),
    "check_transformer_preserve_dtypes": _refused(f"{_FEATURES_TABLE}: see test_dtypes"),
    "check_dict_unchanged": _refused(f"{_FEATURES_TABLE}: see test_dict_unchanged_by_predict"),
    "check_fit_idempotent": _refused(
        f"{_FEATURES_TABLE}; and weights=None draws new random weights at every fit (tagged "
        "non_deterministic): see test_fit_idempotent, with a weights file"
    ),
    "check_fit1d": _Xfail(f"{_FIT_LOADS}, so 1-D X passes fit", AssertionError, _DID_NOT_RAISE),
    "check_fit2d_predict1d": _Xfail(
        f"{_FEATURES_TABLE}, and 1-D rows are refused without sklearn's 'Reshape your data': "
        "see test_one_image_needs_the_batch_axis",
        AssertionError,
        r"X must be images of shape \(n_samples, height, width, 3\), got shape \(3,\)",
    ),
}

_ROWS = (
    "feeds a 2-D float table: each row is a 1-D float array, not an image ImageLoader "
    "decodes (a path, bytes, a PIL image or a uint8 (h, w[, 3 or 4]) array)"
)
_LOADER_FIT = (
    "fit only validates the parameters and does not read X: the loader is stateless and "
    "transform works unfitted"
)


def _not_images(reason, dtype="float64"):
    """ImageLoader refuses each row of the table, and lists them all."""
    return _Xfail(reason, ImageLoadError, f"TypeError: arrays must be uint8, got {dtype};")


_LOADER_XFAIL = {
    "check_fit_score_takes_y": _not_images(_ROWS),
    "check_n_features_in_after_fitting": _Xfail(
        f"{_LOADER_FIT}, and images have no feature columns", AssertionError, _NO_N_FEATURES_IN
    ),
    "check_n_features_in": _Xfail(
        f"{_LOADER_FIT}, and images have no feature columns", AssertionError, _BARE_ASSERT
    ),
    "check_estimators_dtypes": _not_images(f"{_ROWS}: see test_dtypes", "float32"),
    "check_complex_data": _Xfail(
        f"{_LOADER_FIT}, so complex X passes fit", AssertionError, _DID_NOT_RAISE
    ),
    "check_dtype_object": _not_images(_ROWS, "object"),
    "check_estimators_empty_data_messages": _Xfail(
        f"{_LOADER_FIT}; and an empty list loads as an empty (0, h, w, 3) array, refused by "
        "the next step: see test_empty_data",
        AssertionError,
        "does not raise a ValueError when an empty data is used to train",
    ),
    "check_pipeline_consistency": _not_images(_ROWS),
    "check_estimators_nan_inf": _Xfail(
        f"{_LOADER_FIT}: see test_nan_inf", AssertionError, "doesn't check for NaN and inf in fit"
    ),
    "check_estimator_sparse_tag": _Xfail(
        f"{_LOADER_FIT}, so sparse X passes fit",
        AssertionError,
        "didn't fail when fitted on sparse data",
    ),
    "check_estimators_pickle": _not_images(f"{_ROWS}: see test_pickle_round_trip"),
    "check_f_contiguous_array_estimator": _not_images(
        f"{_ROWS}: see test_input_containers[fortran]"
    ),
    "check_transformer_data_not_an_array": _Xfail(
        "_NotAnArray only has __array__ and cannot be iterated, while ImageLoader takes a "
        "sequence of images (list, 1-D array of paths, Series); its rows would not be "
        "images either: see test_input_containers[not_an_array]",
        TypeError,
        r"^X must be a sequence of images \(.*\), got _NotAnArray$",
    ),
    "check_transformer_general": _not_images(_ROWS),
    "check_transformer_preserve_dtypes": _Xfail(
        "feeds a 2-D table cast to uint8, as the preserves_dtype tag asks: each row is a "
        "1-D array, not an image: see test_dtypes",
        ImageLoadError,
        r"ValueError: arrays must be \(H, W\), \(H, W, 3\) or \(H, W, 4\), got \(3,\)",
    ),
    "check_transformers_unfitted_stateless": _not_images(f"{_ROWS}: see test_unfitted"),
    "check_methods_sample_order_invariance": _not_images(
        f"{_ROWS}: see test_sample_order_invariance"
    ),
    "check_methods_subset_invariance": _not_images(f"{_ROWS}: see test_subset_invariance"),
    "check_dict_unchanged": _not_images(f"{_ROWS}: see test_dict_unchanged_by_predict"),
    "check_fit_idempotent": _not_images(f"{_ROWS}: see test_fit_idempotent"),
    "check_fit1d": _Xfail(f"{_LOADER_FIT}, so 1-D X passes fit", AssertionError, _DID_NOT_RAISE),
    "check_fit2d_predict1d": _Xfail(
        "transform gets a 1-D float array: every item is a number, refused with an "
        "ImageLoadError listing each, not sklearn's 'Reshape your data'",
        AssertionError,
        "TypeError: unsupported input of type float64; expected a path, bytes, a PIL image",
    ),
}

PER_ESTIMATOR_XFAIL_CHECKS = {
    ScratchCNNClassifier: _CLASSIFIER_XFAIL,
    TransferClassifier: _CLASSIFIER_XFAIL,
    AlexNetTransferClassifier: _CLASSIFIER_XFAIL,
    PretrainedFeatures: _FEATURES_XFAIL,
    ImageLoader: _LOADER_XFAIL,
}


def _chain(exc):
    """An exception and each that caused it, as its traceback shows them."""
    while exc is not None:
        yield exc
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def _first_line(exc):
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:160]}"


# Not given to parametrize_with_checks as expected_failed_checks: its xfail mark would
# take any error as the expected one. The test says xfail itself, for the expected error.
@parametrize_with_checks(list(ESTIMATORS.values()))
def test_sklearn_compatible(estimator, check):
    name = _check_name(check)
    expected = PER_ESTIMATOR_XFAIL_CHECKS[type(estimator)].get(name)
    if expected is None:
        check(estimator)
        return
    try:
        with warnings.catch_warnings():  # the warnings of a check known to fail are noise
            warnings.simplefilter("ignore")
            check(estimator)
    except Exception as exc:
        matched = any(re.search(expected.match, str(e)) for e in _chain(exc))
        if type(exc) is not expected.error or not matched:
            raise  # failing for another reason than the one listed: a real failure
        error = " <- ".join(map(_first_line, _chain(exc)))
    else:
        pytest.fail(f"{name} passes now: remove it from the expected failures")
    # Outside the except block, so without the traceback: pytest formats the traceback of
    # every expected failure, parsing each file in it (estimator_checks.py has 5000 lines),
    # which takes over a minute for these 160 checks. The reason and the error say as much.
    pytest.xfail(f"{expected.reason} [{error}]")


# -- the same guarantees, on images ------------------------------------------------------
#
# Tests that fit again, or copy or pickle the weights, leave AlexNetTransferClassifier out:
# it runs TransferClassifier's code (it only changes defaults) with 61M parameters, which
# would double the time of this file. Its one fit is shared by the other tests.

REFIT = ["scratch", "transfer", "features", "loader"]
_METHODS = ("predict", "predict_proba", "transform")


def _outputs(estimator, X):
    return {m: getattr(estimator, m)(X) for m in _METHODS if hasattr(estimator, m)}


def _assert_same(expected, actual, rtol=1e-6, atol=1e-6):
    assert expected.keys() == actual.keys()
    for method, value in expected.items():
        if value.dtype.kind == "f":
            assert actual[method].dtype == value.dtype, method
            assert_allclose(actual[method], value, rtol=rtol, atol=atol, err_msg=method)
        else:
            assert_array_equal(actual[method], value, err_msg=method)


def _is_public(name):
    return not name.startswith("_") and not name.endswith("_")


def _fit(estimator, X, y):
    return estimator.fit(X, y) if is_classifier(estimator) else estimator.fit(X)


@pytest.fixture(scope="module")
def data():
    """20 images (batches of 16 and 4), 2 classes: 32x32, or 64x64 for AlexNet (63 at least)."""
    sets = {
        size: make_image_dataset(n_samples=20, n_classes=2, size=size, random_state=0)
        for size in (32, 64)
    }
    return lambda name: sets[64 if name == "alexnet" else 32]


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """Fixed random squeezenet1_1 weights, so that PretrainedFeatures is deterministic."""
    path = tmp_path_factory.mktemp("weights") / "squeezenet1_1.pt"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def make(weights_file):
    """A fresh, unfitted copy of a tiny estimator, by name."""

    def make(name):
        estimator = clone(ESTIMATORS[name])
        if name == "features":  # as in use: the same weights at every fit
            estimator.set_params(weights=str(weights_file))
        if "device" in estimator.get_params():  # outputs are compared to 1e-5 or exactly,
            estimator.set_params(device="cpu")  # which CUDA's TF32 convolutions are not
        return estimator

    return make


@pytest.fixture(scope="module")
def fitted(make, data):
    """Fit each estimator once per module; remember what fit returned and what it found."""
    cache = {}

    def fitted(name):
        if name not in cache:
            estimator = make(name)
            params = {k: joblib.hash(v) for k, v in estimator.get_params().items()}
            public = {k: v for k, v in vars(estimator).items() if _is_public(k)}
            returned = _fit(estimator, *data(name))
            cache[name] = estimator, returned, params, public
        return cache[name][0]

    fitted.record = lambda name: cache[name]
    return fitted


@pytest.mark.parametrize("name", ALL)
def test_fit_returns_self(name, fitted):
    estimator = fitted(name)
    assert fitted.record(name)[1] is estimator


@pytest.mark.parametrize("name", ALL)
def test_fit_keeps_params(name, fitted):
    """fit changes no parameter (deep compare, as sklearn) and adds no public attribute."""
    estimator = fitted(name)
    _, _, params_before, public_before = fitted.record(name)
    params = estimator.get_params()
    assert params.keys() == params_before.keys()
    changed = [k for k, v in params.items() if joblib.hash(v) != params_before[k]]
    assert not changed, f"fit changed the parameters {changed}"
    public = [k for k in vars(estimator) if _is_public(k)]
    assert sorted(public) == sorted(public_before), "fit added public attributes"
    assert all(vars(estimator)[k] is public_before[k] for k in public)


@pytest.mark.parametrize("name", REFIT)
def test_fit_idempotent(name, fitted, data):
    """Fitting a fitted estimator again gives the same model (random_state or fixed weights)."""
    X, y = data(name)
    first = fitted(name)
    again = copy.deepcopy(first)
    assert _fit(again, X, y) is again
    _assert_same(_outputs(first, X), _outputs(again, X))


def _snapshot(estimator):
    """Identity of every attribute, and a hash of those small enough to hash."""
    big = (torch.nn.Module, torch.optim.Optimizer)
    return {
        k: (id(v), None if isinstance(v, big) else joblib.hash(v))
        for k, v in vars(estimator).items()
    }


@pytest.mark.parametrize("name", ALL)
def test_dict_unchanged_by_predict(name, fitted, data):
    estimator = fitted(name)
    X = data(name)[0][:5]  # a batch size no other test uses: a stored size would show
    for method in _METHODS:
        if hasattr(estimator, method):
            before = _snapshot(estimator)
            getattr(estimator, method)(X)
            assert _snapshot(estimator) == before, f"{method} changed the estimator"


@pytest.mark.parametrize("name", REFIT)
def test_pickle_round_trip(name, fitted, data):
    X = data(name)[0]
    estimator = fitted(name)
    loaded = pickle.loads(pickle.dumps(estimator))
    assert type(loaded) is type(estimator)
    assert joblib.hash(loaded.get_params()) == joblib.hash(estimator.get_params())
    _assert_same(_outputs(estimator, X), _outputs(loaded, X), rtol=0, atol=0)


@pytest.mark.parametrize(
    "y, match",
    [
        pytest.param(np.full(20, "circle"), "single class", id="one_label"),
        pytest.param(np.linspace(0, 1, 20), "Unknown label type: continuous", id="continuous"),
        pytest.param(None, "y should be a 1d array", id="none"),
        pytest.param(
            np.full(20, np.nan),
            "Input y contains NaN",
            id="nan",
            marks=pytest.mark.filterwarnings("ignore:invalid value encountered in cast"),
        ),
        pytest.param(np.array(["circle", "cross"] * 9), "20 images but y has 18", id="length"),
    ],
)
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_bad_targets(name, make, data, y, match):
    with pytest.raises(ValueError, match=match):
        make(name).fit(data(name)[0], y)


@pytest.mark.parametrize("name", ["scratch", "transfer"])
def test_supervised_y_2d(name, make, fitted, data):
    """y of shape (n, 1) warns, as column_or_1d(warn=True) does, and fits as y of shape (n,).

    sklearn's check_supervised_y_2d on images.
    """
    X, y = data(name)
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        estimator = make(name).fit(X, y[:, np.newaxis])
    assert_array_equal(estimator.classes_, fitted(name).classes_)
    _assert_same(_outputs(fitted(name), X), _outputs(estimator, X))


@pytest.mark.parametrize("name", ["scratch", "transfer"])
def test_sample_weight_is_refused(name, make, data):
    """No classifier takes sample_weight; passing one fails and says so."""
    with pytest.raises(TypeError, match="sample_weight"):
        make(name).fit(*data(name), sample_weight=np.ones(20))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_string_classes(name, fitted, data):
    X, y = data(name)
    estimator = fitted(name)
    assert estimator.classes_.tolist() == ["circle", "cross"]
    pred = estimator.predict(X)
    assert pred.dtype == y.dtype and set(pred) <= {"circle", "cross"}


@pytest.mark.parametrize("name", ["scratch", "transfer"])
def test_int_classes(name, make, data):
    X = data(name)[0]
    y = np.array([7, -1, 3])[np.arange(20) % 3]  # three classes, unsorted, one negative
    estimator = make(name).fit(X, y)
    assert estimator.classes_.tolist() == [-1, 3, 7]
    proba = estimator.predict_proba(X)
    assert proba.shape == (20, 3)
    assert_allclose(proba.sum(1), 1, rtol=1e-5)
    pred = estimator.predict(X)
    assert pred.dtype == y.dtype
    assert_array_equal(pred, estimator.classes_[proba.argmax(1)])


@pytest.mark.parametrize("name", ALL)
def test_empty_data(name, make, fitted, data):
    X, y = data(name)
    if name == "loader":  # no files, no images: the next step refuses an empty batch
        assert make(name).fit_transform(X[:0]).shape == (0, 4, 4, 3)
        return
    with pytest.raises(ValueError, match="X is empty: found 0 images"):
        make(name).fit(X[:0], y[:0]) if name in CLASSIFIERS else make(name).fit_transform(X[:0])
    for method in _METHODS:
        if hasattr(fitted(name), method):
            with pytest.raises(ValueError, match="X is empty"):
                getattr(fitted(name), method)(X[:0])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ALL)
def test_nan_inf(name, make, fitted, data, value):
    X, y = data(name)
    bad = X / 255.0
    bad[3, 10, 20, 1] = value
    if name == "loader":  # it decodes uint8 arrays only: float ones are refused, NaN or not
        with pytest.raises(ValueError, match="arrays must be uint8, got float64"):
            make(name).fit_transform(bad)
        return
    if name in CLASSIFIERS:
        with pytest.raises(ValueError, match="X contains NaN or infinity"):
            make(name).fit(bad, y)
    for method in _METHODS:
        if hasattr(fitted(name), method):
            with pytest.raises(ValueError, match="X contains NaN or infinity"):
                getattr(fitted(name), method)(bad)


@pytest.mark.parametrize("name", ALL)
def test_sample_order_invariance(name, fitted, data):
    X = data(name)[0]
    estimator = fitted(name)
    order = np.random.RandomState(0).permutation(len(X))
    expected = {m: v[order] for m, v in _outputs(estimator, X).items()}
    _assert_same(expected, _outputs(estimator, X[order]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_subset_invariance(name, fitted, data):
    """An image alone gives what it gives in a batch (eval mode: no batch statistics)."""
    X = data(name)[0]
    estimator = fitted(name)
    full = _outputs(estimator, X)
    for i in (0, 7, 19):
        alone = _outputs(estimator, X[i : i + 1])
        _assert_same({m: v[i : i + 1] for m, v in full.items()}, alone, rtol=1e-5, atol=1e-5)


_CONTAINERS = {
    "memmap": create_memmap_backed_data,  # read-only, as joblib hands data to workers
    "fortran": np.asfortranarray,
    "list": list,
    "not_an_array": _NotAnArray,
}


@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable:UserWarning")
@pytest.mark.parametrize("container", _CONTAINERS)
@pytest.mark.parametrize("name", REFIT)
def test_input_containers(name, container, make, fitted, data):
    """Fitting and predicting on another container gives the same model and outputs."""
    X, y = data(name)
    Xc = _CONTAINERS[container](X)
    if container == "fortran":
        assert Xc.flags.f_contiguous and not Xc.flags.c_contiguous
    if name == "loader" and container == "not_an_array":
        with pytest.raises(TypeError, match="X must be a sequence of images"):
            make(name).fit_transform(Xc)
        return
    estimator = _fit(make(name), Xc, y)
    _assert_same(_outputs(fitted(name), X), _outputs(estimator, Xc), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("name", REFIT)
def test_dtypes(name, make, fitted, data, dtype):
    """uint8 images and float images in [0, 1] are the same images."""
    X, y = data(name)
    Xd = X if dtype is np.uint8 else (X / 255).astype(dtype)
    if name == "loader":
        assert get_tags(make(name)).transformer_tags.preserves_dtype == ["uint8"]
        if dtype is np.uint8:
            assert make(name).fit_transform(Xd).dtype == np.uint8
        else:
            with pytest.raises(ValueError, match="arrays must be uint8"):
                make(name).fit_transform(Xd)
        return
    estimator = fitted(name) if dtype is np.uint8 else _fit(make(name), Xd, y)
    outputs = _outputs(estimator, Xd)
    if name == "features":  # float32 features, whatever comes in, as its tags say
        assert outputs["transform"].dtype == np.float32
        preserved = get_tags(estimator).transformer_tags.preserves_dtype
        assert (np.dtype(dtype).name in preserved) == (dtype is np.float32)
    else:
        assert outputs["predict"].dtype == y.dtype
        assert outputs["predict_proba"].dtype == np.float32
    _assert_same(_outputs(fitted(name), X), outputs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_unfitted(name, make, fitted, data):
    X = data(name)[0]
    estimator = make(name)
    if not get_tags(estimator).requires_fit:  # ImageLoader: stateless, works unfitted
        check_is_fitted(estimator)
        _assert_same(_outputs(fitted(name), X), _outputs(estimator, X))
        return
    with pytest.raises(NotFittedError):
        check_is_fitted(estimator)
    for method in _METHODS:
        if hasattr(estimator, method):
            with pytest.raises(NotFittedError):
                getattr(estimator, method)(X)
    check_is_fitted(fitted(name))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_image_size_is_checked(name, fitted, data):
    """The image size learned in fit is the one predict and partial_fit accept."""
    X, y = data(name)
    estimator = fitted(name)
    size = X.shape[1]
    assert estimator.image_size_ == (size, size)
    half = np.ascontiguousarray(X[:, ::2, ::2])
    match = f"fitted on {size}x{size} images but X has {size // 2}x{size // 2}"
    with pytest.raises(ValueError, match=match):
        estimator.predict_proba(half)
    with pytest.raises(ValueError, match=match):  # raised before anything is trained
        estimator.partial_fit(half, y)


@pytest.mark.parametrize("name", FITTED)
def test_one_image_needs_the_batch_axis(name, fitted, data):
    image = data(name)[0][0]
    method = "transform" if name == "features" else "predict"
    with pytest.raises(ValueError, match=re.escape(f"got shape {image.shape}")):
        getattr(fitted(name), method)(image)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_invalid_params_wait_for_fit(name, make, data):
    """An invalid value set by set_params breaks neither get_params nor clone; fit says."""
    estimator = make(name).set_params(verbose=None)
    assert estimator.get_params()["verbose"] is None
    estimator = clone(estimator).set_params(verbose=0).set_params(verbose="loud")
    with pytest.raises(InvalidParameterError, match="'verbose' parameter"):
        estimator.fit(*data(name))


def test_blank_float_images_train(data):
    """Constant float images (zero std) train without NaN.

    ScratchCNNClassifier is the one that measures its normalisation on the data.
    """
    X, y = data("scratch")
    blank = np.full(X.shape, 0.5, dtype=np.float32)
    proba = clone(ESTIMATORS["scratch"]).fit(blank, y).predict_proba(blank)
    assert np.isfinite(proba).all()


def test_random_weights_are_non_deterministic(make, data):
    """weights=None draws new weights at every fit, and the tags say so."""
    X = data("features")[0][:2]
    random = clone(ESTIMATORS["features"])
    assert get_tags(random).non_deterministic
    assert not get_tags(make("features")).non_deterministic
    assert not np.allclose(random.fit(X).transform(X), random.fit(X).transform(X))
