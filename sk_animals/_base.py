"""The one skorch base that every image classifier of the package shares.

It owns the scikit-learn and skorch glue common to training any CNN on the uint8 images
of :class:`~sk_animals.preprocessing.ImageLoader`: parameter validation, labels, device,
seeding, class weights, optimizer defaults, mixed precision, interrupts and the callbacks
that draw the paper's curves. Tensor code lives in ``_tensors``, callbacks in
``_callbacks``, networks in ``_networks``; the public home of the base is
:class:`sk_animals.ImageClassifier`.
"""

import inspect
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import (
    Interval,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from skorch import NeuralNetClassifier
from skorch.callbacks import (
    EpochTimer,
    PassthroughScoring,
    PrintLog,
    ProgressBar,
)
from skorch.dataset import ValidSplit
from torch import nn

from ._callbacks import IterationLRSchedule, IterationScores
from ._tensors import (
    augment,
    channel_stats,
    check_images,
    check_module_state,
    flush_denormals,
    is_channels_last,
    load_module_state,
    resolve_device,
    state_tensors,
    to_network_input,
)
from ._training import PRECISIONS, StopEarly, TrainingMixin, resolve_precision
from .datasets import check_labels
from .preprocessing import MAX_IMAGE_SIDE

#: True while a saved estimator rebuilds its network (``_restore_fitted_state``): its
#: weights come from the file's tensors, so ``_module_kwargs`` asks for no pretrained ones.
RESTORING = ContextVar("sk_animals_restoring", default=False)

__all__ = ["ImageClassifier", "check_images"]

#: The parameters every image classifier shares, documented once (see ``shared_docs``).
SHARED_PARAMETERS = """\
    train_split : None, float, (X_valid, y_valid) or callable, default=None
        Validation during training. ``None`` (the default) trains on all the data
        and holds nothing out; a float holds out that stratified fraction (seeded by
        ``random_state``); a pair is a given validation set; a callable is any skorch
        splitter (e.g. ``skorch.dataset.ValidSplit``).
    validation_frequency : int, default=None
        Also score the validation set every this many iterations, for
        per-iteration validation curves; ``None`` scores once per epoch.
    random_flip : bool, default=False
        Training-time random horizontal reflection (MATLAB's RandXReflection).
    random_translate : float, default=0.0
        Training-time random translation by up to this fraction of the width and
        height, in both directions, filling with the mean colour (RandX/YTranslation).
    tta : bool, default=False
        Test-time augmentation: outside training, the network's outputs for each image
        and its horizontal mirror are averaged (predictions take twice as long).
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, as in scikit-learn.
    lr_schedule : {None, "onecycle", "cosine"}, default=None
        Learning-rate schedule stepped every iteration over the ``max_epochs``;
        ``lr`` is its peak.
    precision : {"fp32", "bf16", "fp16", "auto"}, default="fp32"
        Mixed-precision autocast for the forward pass (fp16 with gradient scaling).
        ``"auto"``: bf16 where the device computes it natively (a CUDA device with
        bf16, a CPU with AVX-512 BF16 or AMX), fp32 elsewhere; ``precision_`` says
        which ran. (The default stays fp32 until bf16's accuracy is measured at the
        paper's budget; see :doc:`/performance`.)
    channels_last : bool or "auto", default="auto"
        Keep the network's weights and every batch in channels-last memory order.
        ``"auto"``: channels-last where it was measured faster and safe to train: in bf16
        or fp16 on a CUDA device, and on a CPU for torchvision's AlexNet, SqueezeNet and
        ResNet backbones (squeezenet1_1 fits 1.30x, resnet18 1.25x, AlexNet 1.15x faster
        on 2 cores); the default NCHW order elsewhere: the scratch networks on a CPU (a
        wash for the paper's; the residual network's measurements disagreed between
        runs), timm's backbones (a sampled timm model crashed in oneDNN while
        training channels-last) and other torchvision families. See :doc:`/performance`.
    compile : bool, default=False
        Compile the network with ``torch.compile`` (skorch's parameter; ``compile__mode``,
        ``compile__dynamic`` and the other ``compile__*`` are passed to it). It is
        compiled in place (``nn.Module.compile``): ``module_`` stays the network's own
        class with the weights' names of an eager one, so saved files are the same.
        The first fit and the first prediction pay for the compilation (tens of seconds
        on a CPU), less when torch's inductor cache (``TORCHINDUCTOR_CACHE_DIR``;
        ``sk-animals compare --cache-dir DIR`` keeps it in ``DIR/inductor``) holds the
        kernels of an earlier run. Predictions equal the eager fit's within float
        tolerance for the same ``random_state``, except that torch's compiler draws
        dropout's random numbers its own way (a compiled fit is still reproducible);
        ``compile__options={"fallback_random": True}`` draws them as eager torch does.
        Off by default: on the paper's network a cold start took 25 s, over the 10 s a
        default may add (see :doc:`/performance`).
        :func:`~sk_animals.load` never compiles (a file does not choose it); set
        ``compile=True`` on the loaded model to compile it, which keeps its weights.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, augmentation and splitting, so two
        fits on the CPU are identical. The global torch RNG is left untouched.
    verbose : int, default=1
        0 is silent, 1 prints a line per epoch, 2 adds a progress bar per epoch.
    **kwargs
        Any other skorch parameter (``criterion``, ``optimizer``, ``callbacks``,
        ``iterator_train__num_workers``, ``optimizer__weight_decay``, ``module__*``,
        ``criterion__*`` ...). With SGD, ``optimizer__momentum`` defaults to 0.9 (the
        paper's SGD with momentum), applied when the optimizer is built."""

SHARED_ATTRIBUTES = """\
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    label_encoder_ : sklearn.preprocessing.LabelEncoder
        Maps labels to the network's output indices.
    image_size_ : tuple of (int, int)
        Height and width of the training images; ``predict`` needs the same.
    precision_ : {"fp32", "bf16", "fp16"}
        The precision that ran (``precision="auto"`` resolved on the fitting device);
        saved with the model and used by ``predict``.
    mean_, std_ : ndarray of shape (3,)
        Per-channel normalisation applied to every batch, in [0, 1] units.
    class_weight_ : ndarray of shape (n_classes,) or None
        Weights used in the loss.
    module_, criterion_, optimizer_, history_
        As in skorch; ``history_`` holds ``train_loss`` and ``train_acc`` for every
        iteration (``history_[:, "batches"]``) and per epoch. A fit cut short records
        ``stopped`` (``"interrupted"`` or ``"early_stopping"``) in its last epoch."""


def classes_to_json(classes):
    """Class labels as JSON that keeps their dtype (see :func:`classes_from_json`)."""
    return {"dtype": classes.dtype.str, "values": classes.tolist()}


def classes_from_json(value):
    """The class labels that :func:`classes_to_json` wrote; ValueError for anything else
    (a file's labels are data: a kind of array or a size they do not need is refused)."""
    dtype, values = np.dtype(value["dtype"]), value["values"]
    if not isinstance(values, list) or dtype.kind not in "biufUO":
        raise ValueError(f"classes_ are not a list of labels of a plain dtype ({dtype.str})")
    if dtype.itemsize * len(values) > 2**24:
        raise ValueError(f"classes_ would take {dtype.itemsize * len(values)} bytes")
    return np.array(values, dtype)


def shared_docs(cls):
    """Fill a class docstring's ``%(shared_parameters)s`` and ``%(shared_attributes)s``."""
    cls.__doc__ = cls.__doc__.replace("    %(shared_parameters)s", SHARED_PARAMETERS).replace(
        "    %(shared_attributes)s", SHARED_ATTRIBUTES
    )
    return cls


@shared_docs
class ImageClassifier(TrainingMixin, NeuralNetClassifier):
    """A skorch classifier for ``(n, height, width, 3)`` images, the base of the package.

    Takes the uint8 output of :class:`~sk_animals.preprocessing.ImageLoader` (float in
    [0, 1] too) and converts, normalises and augments each batch on the training device;
    the data set is never converted to float as a whole. Labels may be strings or ints.
    Subclasses choose the network and change defaults only.

    Parameters
    ----------
    module : torch.nn.Module class or instance
        The network; a class is instantiated with ``n_classes`` (and what
        the subclass's ``_module_kwargs`` adds) plus the ``module__*`` parameters.
    criterion : torch criterion class, default=torch.nn.CrossEntropyLoss
        Takes logits; ``criterion__label_smoothing`` smooths labels.
    optimizer : torch optimizer class, default=torch.optim.SGD
        With SGD, ``optimizer__momentum`` defaults to 0.9.
    lr : float, default=0.01
        Learning rate (the peak learning rate when ``lr_schedule`` is set).
    max_epochs : int, default=10
        Passes over the training data; the data is shuffled every epoch. 0 trains
        nothing and warns (``sklearn.exceptions.ConvergenceWarning``, as
        ``LogisticRegression(max_iter=0)`` does): the network keeps its initial weights.
    batch_size : int, default=128
        Mini-batch size (MATLAB's default).
    %(shared_parameters)s

    Attributes
    ----------
    %(shared_attributes)s
    """

    def __init__(
        self,
        module,
        *,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.SGD,
        lr=0.01,
        max_epochs=10,
        batch_size=128,
        train_split=None,
        validation_frequency=None,
        random_flip=False,
        random_translate=0.0,
        tta=False,
        class_weight=None,
        lr_schedule=None,
        precision="fp32",
        channels_last="auto",
        device="auto",
        random_state=None,
        verbose=1,
        **kwargs,
    ):
        kwargs.setdefault("iterator_train__shuffle", True)
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            device=device,
            verbose=verbose,
            **kwargs,
        )
        self.validation_frequency = validation_frequency
        self.random_flip = random_flip
        self.random_translate = random_translate
        self.tta = tta
        self.class_weight = class_weight
        self.lr_schedule = lr_schedule
        self.precision = precision
        self.channels_last = channels_last
        self.random_state = random_state

    _parameter_constraints = {
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), Options(Integral, {-1})],
        "train_split": [None, Interval(Real, 0, 1, closed="neither"), tuple, callable],
        "validation_frequency": [None, Interval(Integral, 1, None, closed="left")],
        "random_flip": ["boolean"],
        "random_translate": [Interval(Real, 0, 0.5, closed="left")],
        "tta": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "lr_schedule": [None, StrOptions({"onecycle", "cosine"})],
        "precision": [StrOptions({*PRECISIONS, "auto"})],
        "channels_last": ["boolean", StrOptions({"auto"})],
        "compile": ["boolean"],
        "device": [str, torch.device, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # -- "auto" device: skorch reads ``self.device`` everywhere and gets the resolved
    # device; get_params, clone and pickle keep what the user asked for.
    @property
    def device(self):
        return resolve_device(self.__dict__["device"])

    @device.setter
    def device(self, value):
        self.__dict__["device"] = value

    def get_params(self, deep=True, **kwargs):
        params = super().get_params(deep=deep, **kwargs)
        params["device"] = self.__dict__["device"]
        return params

    def __setstate__(self, state):
        # a pickle of an earlier release lacks the parameters added since: they get their
        # defaults, except channels_last: False, the order that release trained in
        for cls in type(self).__mro__[:-1]:  # ours and skorch's (compile...), not object's
            if "__init__" in vars(cls):
                for name, p in inspect.signature(cls.__init__).parameters.items():
                    if p.default is not p.empty:
                        state.setdefault(name, False if name == "channels_last" else p.default)
        if state.get("initialized_"):  # initialised before ``initialize`` set these
            state.setdefault("precision_", state["precision"])
            state.setdefault("grad_scaler_", None)
        requested = state["device"]
        state["device"] = resolve_device(requested)  # where skorch maps the tensors
        super().__setstate__(state)
        if requested == "auto":
            self.__dict__["device"] = requested

    @property
    def _default_callbacks(self):
        callbacks = [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
            ("scores", IterationScores()),
        ]
        if self.lr_schedule is not None:
            callbacks.append(("lr_schedule", IterationLRSchedule(self.lr_schedule)))
        # get_params lists these: an invalid verbose must wait for fit's validation
        if isinstance(self.verbose, Real) and self.verbose >= 2:
            callbacks.append(("progress_bar", ProgressBar()))
        return callbacks + [("print_log", PrintLog())]

    @property
    def classes_(self):
        return self.label_encoder_.classes_

    # -- validation and what is learned from the data before the network is built
    def _check_params(self):
        """scikit-learn's validation of ``_parameter_constraints``, in ``fit``; a warning
        for ``max_epochs=0``, as scikit-learn's ``LogisticRegression`` warns for
        ``max_iter=0``."""
        validate_parameter_constraints(
            self._parameter_constraints,
            self.get_params(deep=False),
            caller_name=type(self).__name__,
        )
        if self.max_epochs == 0:
            warnings.warn(
                f"{type(self).__name__}(max_epochs=0) trains no epoch: the network keeps the "
                "weights it starts with (its initialisation, or what a callback such as "
                "LoadInitState loaded); give max_epochs >= 1 to train it",
                ConvergenceWarning,
                stacklevel=4,  # the caller of fit
            )

    def _check_Xy(self, X, y):
        X = check_images(X)
        check_labels(y)  # before numpy turns ["cat", 1] into ["cat", "1"]
        y = column_or_1d(y, warn=True)
        missing = np.flatnonzero([v is None for v in y]).tolist() if y.dtype == object else []
        if missing:
            raise ValueError(
                f"y has no label (None) at positions {missing[:10]}; give every image a "
                "label or leave those images out"
            )
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} images but y has {len(y)} labels")
        check_classification_targets(y)
        return X, y

    def _learn_data(self, X, y):
        """Everything the network and the loss need from the data, as ``*_`` attributes."""
        self.label_encoder_ = LabelEncoder().fit(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has a single class ({self.classes_.tolist()[0]!r}); "
                "a classifier needs at least 2"
            )
        self.image_size_ = tuple(int(v) for v in X.shape[1:3])
        self.mean_, self.std_ = self._normalization(X)
        self._stats_on_device_ = {}
        self.class_weight_ = (
            None
            if self.class_weight is None
            else compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        )

    # -- the fitted state, as plain values and tensors (what sk_animals.persistence stores)
    def _fitted_state(self):
        """What ``fit`` learned: (JSON values, CPU tensors by name); see ``_learn_data``."""
        self.check_is_fitted()
        values = {
            "classes_": classes_to_json(self.classes_),
            "image_size_": list(self.image_size_),
            "precision_": self.precision_,
        }
        arrays = {"mean_": self.mean_, "std_": self.std_, "class_weight_": self.class_weight_}
        return values, state_tensors(self.module_, **arrays)

    def _restore_fitted_state(self, values, tensors):
        """Become the fitted estimator whose ``_fitted_state`` gave ``values`` and ``tensors``.

        The settings are checked against ``tensors`` first (image size within
        :data:`MAX_IMAGE_SIDE`, the network's shapes on the meta device, see
        ``check_module_state``), so that a file whose settings disagree with its tensors
        allocates nothing; a ValueError says what is wrong. The network is then built
        without pretrained weights (nothing is read or downloaded) and loaded from
        ``tensors``; the global torch RNG is left untouched.
        """
        self.label_encoder_ = LabelEncoder()
        self.label_encoder_.classes_ = classes_from_json(values["classes_"])
        self.image_size_ = tuple(values["image_size_"])
        if len(self.image_size_) != 2 or not all(
            isinstance(v, int) and 1 <= v <= MAX_IMAGE_SIDE for v in self.image_size_
        ):
            raise ValueError(
                f"image_size_={values['image_size_']!r} is not two sides of 1 to "
                f"{MAX_IMAGE_SIDE} pixels"
            )
        self.mean_, self.std_ = tensors["mean_"].numpy(), tensors["std_"].numpy()
        weight = tensors.get("class_weight_")
        self.class_weight_ = None if weight is None else weight.numpy()
        self._stats_on_device_ = {}
        token = RESTORING.set(True)  # read by _module_kwargs: the weights come from tensors
        try:
            check_module_state(self.module, self._module_params(), tensors)  # nothing built yet
            with torch.random.fork_rng(devices=[]):
                self.initialize()
        finally:
            RESTORING.reset(token)
        # what fit ran, kept for predict; files before precision_ was recorded ran what
        # their parameter said ("auto" did not exist yet)
        self.precision_ = values.get("precision_", self.precision)
        load_module_state(self.module_, tensors)
        return self

    def _training_inputs(self, X):
        """What the training loop iterates over, computed once per fit from the images ``X``:
        the images themselves here (a frozen body's features in transfer, see ``infer``)."""
        return X

    def _validation_inputs(self, X):
        """What a given validation set (``train_split=(X_valid, y_valid)``) is scored from,
        after ``_training_inputs`` ran on the training images: the images here."""
        return X

    def _inference_inputs(self, X):
        """What the network predicts from, given the checked images ``X``: the images here."""
        return X

    def _initialize_from_data(self, X, y):
        """After ``initialize``, before the first epoch: set weights from the data (none here).

        ``X`` is what ``_training_inputs`` returned, ``y`` is encoded (0 to n_classes - 1).
        """

    def _normalization(self, X):
        """Per-channel (mean, std) for the inputs; here, measured on the training data."""
        return channel_stats(X)

    def _module_kwargs(self):
        """What the data says about the network's shape."""
        return {"n_classes": len(self.classes_)}

    def _module_params(self):
        """The keyword arguments ``module`` is built with: the data's, then ``module__*``."""
        return {**self._module_kwargs(), **self.get_params_for("module")}

    # -- skorch hooks
    def initialize_module(self):
        self.module_ = self.initialized_instance(self.module, self._module_params())
        if self._channels_last():
            self.module_ = self.module_.to(memory_format=torch.channels_last)
        return self

    #: Whether ``channels_last="auto"`` means channels-last on a CPU for this network.
    _channels_last_on_cpu = False

    def _channels_last(self):
        """Whether the network and its batches are channels-last (``"auto"`` resolved)."""
        if self.channels_last != "auto":
            return self.channels_last
        device = torch.device(self.device).type
        if device == "cpu":
            return bool(self._channels_last_on_cpu)
        return device == "cuda" and resolve_precision(self.precision, self.device) != "fp32"

    def _optimizer_defaults(self):
        """Keyword defaults for the optimizer chosen now (not stored as parameters)."""
        return {"momentum": 0.9} if self.optimizer is torch.optim.SGD else {}

    def initialize_criterion(self):
        kwargs = self.get_params_for("criterion")
        if self.class_weight_ is not None:
            kwargs["weight"] = torch.as_tensor(self.class_weight_, dtype=torch.float32)
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    def initialize(self):
        super().initialize()
        device_type = torch.device(self.device).type
        self.precision_ = resolve_precision(self.precision, self.device)
        fp16 = self.precision_ == "fp16"
        self.grad_scaler_ = torch.amp.GradScaler(device_type) if fp16 else None
        return self

    def get_split_datasets(self, X, y=None, **fit_params):
        split = self.train_split
        dataset = self.get_dataset(X, y)
        if split is None:
            return dataset, None
        if isinstance(split, tuple):
            X_valid, y_valid = self._check_Xy(*split)
            X_valid = self._validation_inputs(X_valid)
            return dataset, self.get_dataset(X_valid, self._encode(y_valid))
        if isinstance(split, Real):
            split = ValidSplit(float(split), stratified=True, random_state=self._seed())
        return split(dataset, y, **fit_params)

    def get_params_for(self, prefix):
        """skorch's parameters of ``prefix``; on a CUDA device the data loaders pin memory."""
        params = super().get_params_for(prefix)
        if prefix.startswith("iterator_") and torch.device(self.device).type == "cuda":
            params.setdefault("pin_memory", True)  # asynchronous copies of the uint8 batches
        return params

    def _on_device(self, device):
        """``mean_`` and ``std_`` as tensors on ``device``, copied there once per fit."""
        cache = self.__dict__.setdefault("_stats_on_device_", {})
        key = str(device)
        if key not in cache:
            cache[key] = tuple(
                torch.as_tensor(np.asarray(v), dtype=torch.float32, device=device)
                for v in (self.mean_, self.std_)
            )
        return cache[key]

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_stats_on_device_", None)  # device tensors, made again when needed
        return state

    def get_loss(self, y_pred, y_true, *args, **kwargs):
        # the labels come from pinned memory: copy them without waiting (skorch waits)
        y_true = torch.as_tensor(y_true).to(y_pred.device, non_blocking=True)
        return super().get_loss(y_pred, y_true, *args, **kwargs)

    def infer(self, x, **fit_params):
        """Move a uint8 NHWC batch to the device, convert, augment, normalise, forward."""
        order = is_channels_last(self.module_)  # as the weights are, whatever set them
        x = to_network_input(x, *self._on_device(self.device), self.device, channels_last=order)
        training = self.module_.training
        if training:
            x = augment(x, flip=self.random_flip, translate=self.random_translate)
        mirrored = self.tta and not training
        if mirrored:
            x = torch.cat([x, x.flip(3)])
        if order:  # shifted batches come back from grid_sample as NCHW
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast(x.device.type):
            out = self.module_(x, **fit_params).float()
        return out.reshape(2, -1, *out.shape[1:]).mean(0) if mirrored else out

    # -- seeding
    def _seed(self):
        if self.random_state is None:
            return None
        return int(check_random_state(self.random_state).randint(2**31 - 1))

    @contextmanager
    def _seeded(self):
        seed = self._seed()
        if seed is None:
            yield
            return
        device = torch.device(self.device)
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def _encode(self, y):
        try:
            return self.label_encoder_.transform(y).astype(np.int64)
        except ValueError:
            unseen = sorted(set(np.unique(y).tolist()) - set(self.classes_.tolist()))
            raise ValueError(
                f"y has labels the classifier was not fitted on: {unseen[:10]}"
            ) from None

    # -- public API
    def fit(self, X, y, **fit_params):
        """Train on images ``X`` with labels ``y`` (re-initialising unless warm_start).

        Parameters
        ----------
        X : ndarray of shape (n_samples, height, width, 3)
            uint8, or float in [0, 1].
        y : array-like of shape (n_samples,)
            Labels, strings or ints.
        **fit_params
            Passed to skorch.

        Returns
        -------
        self
        """
        if not self.warm_start:
            self.initialized_ = False
        return self.partial_fit(X, y, **fit_params)

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Train ``max_epochs`` more epochs without re-initialising.

        Parameters
        ----------
        X, y
            As in :meth:`fit`. The first call learns the classes.
        classes : ignored
            Accepted for scikit-learn compatibility; classes come from ``y``.
        **fit_params
            Passed to skorch.

        Returns
        -------
        self
        """
        self._check_params()
        X, y = self._check_Xy(X, y)
        fit_params.pop("_routing_method", None)
        with self._seeded(), flush_denormals():
            fresh = not self.initialized_
            if fresh:
                self._learn_data(X, y)
                self.initialize()
            else:
                self._check_image_size(X)
            y = self._encode(y)
            X = self._training_inputs(X)
            if fresh:
                self._initialize_from_data(X, y)
            # unlike skorch, a Ctrl-C is not swallowed: the caller stops too, and the
            # net's history says that this fit did not finish
            self.notify("on_train_begin", X=X, y=y)
            try:
                self.fit_loop(X, y, **fit_params)
            except StopEarly:
                self.history.record("stopped", "early_stopping")
            except KeyboardInterrupt:
                if self.history:
                    self.history.record("stopped", "interrupted")
                raise
            finally:
                self.notify("on_train_end", X=X, y=y)
        return self

    def _check_predict_images(self, X):
        self.check_is_fitted()
        return self._check_image_size(check_images(X))

    def _check_image_size(self, X):
        if X.shape[1:3] != self.image_size_:
            h, w = self.image_size_
            raise ValueError(
                f"the classifier was fitted on {h}x{w} images but X has "
                f"{X.shape[1]}x{X.shape[2]}; load them with the same ImageLoader size "
                "(an ImageLoader inside the Pipeline does this for you)"
            )
        return X

    def predict_proba(self, X):
        """Class probabilities, rows summing to 1, columns in ``classes_`` order.

        Parameters
        ----------
        X : ndarray of shape (n_samples, height, width, 3)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        X = self._check_predict_images(X)
        with flush_denormals():
            return super().predict_proba(self._inference_inputs(X))

    def predict(self, X):
        """Predicted labels, from ``classes_``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, height, width, 3)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.label_encoder_.inverse_transform(proba.argmax(axis=1))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags
