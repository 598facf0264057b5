"""The one skorch base that every image classifier of the package shares.

It owns what is common to training any CNN on the uint8 images of
:class:`~sk_animals.preprocessing.ImageLoader`: labels, device, seeding, per-batch
conversion and augmentation on the device, class weights, mixed precision, learning-rate
schedules and the per-iteration history that draws the paper's curves.
"""

import math
from contextlib import contextmanager, nullcontext
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback, EpochTimer, PassthroughScoring, PrintLog, ProgressBar
from skorch.dataset import ValidSplit, unpack_data
from torch import nn

__all__ = ["ImageClassifier", "IterationScores", "check_images"]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
LR_SCHEDULES = (None, "onecycle", "cosine")


def resolve_device(device):
    """``"auto"`` becomes ``"cuda"`` when CUDA is available, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_images(X, name="X"):
    """Validate an image batch: ``(n, height, width, 3)``, uint8 or float in [0, 1].

    Returns ``X`` as an ndarray, without copying when it already is one.
    """
    X = np.asarray(X)
    if X.ndim != 4 or X.shape[-1] != 3:
        raise ValueError(
            f"{name} must be images of shape (n_samples, height, width, 3), got shape "
            f"{X.shape}; load files with sk_animals.preprocessing.ImageLoader first"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: found 0 images")
    if X.dtype != np.uint8:
        if not np.issubdtype(X.dtype, np.floating):
            raise ValueError(f"{name} must be uint8 or float in [0, 1], got dtype {X.dtype}")
        if not np.isfinite(X).all():
            raise ValueError(f"{name} contains NaN or infinity")
    return X


def _channel_stats(X, chunk=256, max_images=2048):
    """Per-channel mean and std of images, in [0, 1] units, without a float copy of X.

    Measured on at most ``max_images`` evenly spaced images: enough for three decimals.
    """
    X = X[:: max(1, len(X) // max_images)]
    if X.dtype != np.uint8:
        flat = X.reshape(-1, 3)
        return flat.mean(0, dtype=np.float64), flat.std(0, dtype=np.float64)
    counts = np.zeros((3, 256))
    for start in range(0, len(X), chunk):
        block = X[start : start + chunk]
        for c in range(3):
            counts[c] += np.bincount(block[..., c].ravel(), minlength=256)
    values = np.arange(256) / 255.0
    mean = counts @ values / counts.sum(1)
    std = np.sqrt(counts @ values**2 / counts.sum(1) - mean**2)
    return mean, np.maximum(std, 1e-3)


def to_network_input(x, mean, std, device):
    """A uint8 (or [0, 1] float) NHWC batch to a normalised float NCHW tensor on ``device``.

    The batch travels to the device as uint8 (a quarter of float32's bytes) and is
    converted there.
    """
    x = torch.as_tensor(x).to(device, non_blocking=True).permute(0, 3, 1, 2)
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    x = x.to(torch.float32, copy=True)  # the one float copy; the rest is in place
    mean = torch.as_tensor(np.asarray(mean) * scale, dtype=x.dtype, device=x.device)
    std = torch.as_tensor(np.asarray(std) * scale, dtype=x.dtype, device=x.device)
    return x.sub_(mean.view(1, 3, 1, 1)).div_(std.view(1, 3, 1, 1))


class IterationScores(Callback):
    """Record accuracy per iteration and epoch, and validate every k iterations.

    Writes, per training batch (iteration), ``train_acc`` beside skorch's
    ``train_loss``; per epoch ``train_acc``, ``valid_acc`` and ``valid_acc_best``; and,
    when the net's ``validation_frequency`` is set, ``valid_loss`` and ``valid_acc`` on
    the training batch after which the whole validation set was scored, as MATLAB's
    ``ValidationFrequency`` does. Accuracy of a training batch is measured in training
    mode, as MATLAB's mini-batch accuracy is.
    """

    def on_train_begin(self, net, **kwargs):
        self.best_ = max((e.get("valid_acc", -np.inf) for e in net.history), default=-np.inf)
        self.iteration_ = sum(
            "train_loss" in batch for epoch in net.history for batch in epoch["batches"]
        )

    def on_epoch_begin(self, net, dataset_valid=None, **kwargs):
        self.dataset_valid_ = dataset_valid
        self.correct_ = {True: 0, False: 0}
        self.seen_ = {True: 0, False: 0}

    @staticmethod
    def _count(batch, y_pred):
        """(correct predictions, batch size) of one batch."""
        yi = unpack_data(batch)[1].to(y_pred.device)
        return (y_pred.argmax(1) == yi).sum().item(), len(yi)

    def on_batch_end(self, net, batch, training, y_pred=None, **kwargs):
        correct, n = self._count(batch, y_pred)
        self.correct_[training] += correct
        self.seen_[training] += n
        net.history.record_batch("train_acc" if training else "valid_acc", correct / n)
        if not training:
            return
        self.iteration_ += 1
        k = net.validation_frequency
        if k and self.dataset_valid_ is not None and self.iteration_ % k == 0:
            loss, acc = self._validate(net)
            net.history.record_batch("valid_loss", loss)
            net.history.record_batch("valid_acc", acc)

    def _validate(self, net):
        loss, correct, seen = 0.0, 0, 0
        for batch in net.get_iterator(self.dataset_valid_, training=False):
            step = net.validation_step(batch)
            batch_correct, n = self._count(batch, step["y_pred"])
            loss += step["loss"].item() * n
            correct += batch_correct
            seen += n
        return loss / seen, correct / seen

    def on_epoch_end(self, net, **kwargs):
        for training, name in ((True, "train_acc"), (False, "valid_acc")):
            if self.seen_[training]:
                net.history.record(name, self.correct_[training] / self.seen_[training])
        if self.seen_[False]:
            acc = net.history[-1, "valid_acc"]
            net.history.record("valid_acc_best", bool(acc > self.best_))
            self.best_ = max(self.best_, acc)


class _LRSchedule(Callback):
    """Step a one-cycle or cosine schedule every iteration; ``lr`` is the peak."""

    def on_train_begin(self, net, **kwargs):
        self.scheduler_ = None

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        if self.scheduler_ is not None:
            return
        steps = net.max_epochs * math.ceil(len(dataset_train) / net.batch_size)
        optimizer = net.optimizer_
        for group in optimizer.param_groups:  # the peak, also when fit is called again
            group.setdefault("peak_lr", group["lr"])
        if net.lr_schedule == "onecycle":
            self.scheduler_ = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=[g["peak_lr"] for g in optimizer.param_groups],
                total_steps=steps,
                cycle_momentum="momentum" in optimizer.defaults
                and optimizer.defaults["momentum"] > 0,
            )
        else:
            for group in optimizer.param_groups:
                group["lr"] = group["peak_lr"]
            self.scheduler_ = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)

    def on_batch_end(self, net, training, **kwargs):
        if training:
            net.history.record_batch("lr", net.optimizer_.param_groups[0]["lr"])
            self.scheduler_.step()


class ImageClassifier(NeuralNetClassifier):
    """A skorch classifier for ``(n, height, width, 3)`` images, the base of the package.

    Takes the uint8 output of :class:`~sk_animals.preprocessing.ImageLoader` (float in
    [0, 1] too) and converts, normalises and augments each batch on the training device;
    the data set is never converted to float as a whole. Labels may be strings or ints.
    Subclasses choose the network and change defaults only.

    Parameters
    ----------
    module : torch.nn.Module class or instance
        The network; a class is instantiated with ``n_classes`` (and what
        :meth:`_module_kwargs` adds) plus the ``module__*`` parameters.
    criterion : torch criterion class, default=torch.nn.CrossEntropyLoss
        Takes logits; ``criterion__label_smoothing`` smooths labels.
    optimizer : torch optimizer class, default=torch.optim.SGD
        With SGD, ``optimizer__momentum`` defaults to 0.9.
    lr : float, default=0.01
        Learning rate (the peak learning rate when ``lr_schedule`` is set).
    max_epochs : int, default=10
        Passes over the training data; the data is shuffled every epoch.
    batch_size : int, default=128
        Mini-batch size (MATLAB's default).
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
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, as in scikit-learn.
    lr_schedule : {None, "onecycle", "cosine"}, default=None
        Learning-rate schedule stepped every iteration over the ``max_epochs``.
    precision : {"fp32", "bf16", "fp16"}, default="fp32"
        Mixed-precision autocast for the forward pass (fp16 with gradient scaling).
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, augmentation and splitting, so two
        fits on the CPU are identical. The global torch RNG is left untouched.
    verbose : int, default=1
        0 is silent, 1 prints a line per epoch, 2 adds a progress bar per epoch.
    **kwargs
        Any other skorch parameter (``callbacks``, ``iterator_train__num_workers``,
        ``optimizer__weight_decay``, ``module__*``, ``criterion__*`` ...).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    label_encoder_ : sklearn.preprocessing.LabelEncoder
        Maps labels to the network's output indices.
    image_size_ : (int, int)
        Height and width of the training images; ``predict`` needs the same.
    mean_, std_ : ndarray of shape (3,)
        Per-channel normalisation applied to every batch, in [0, 1] units.
    class_weight_ : ndarray of shape (n_classes,) or None
        Weights used in the loss.
    module_, criterion_, optimizer_, history_
        As in skorch; ``history_`` holds ``train_loss`` and ``train_acc`` for every
        iteration (``history_[:, "batches"]``) and per epoch.
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
        class_weight=None,
        lr_schedule=None,
        precision="fp32",
        device="auto",
        random_state=None,
        verbose=1,
        **kwargs,
    ):
        if optimizer is torch.optim.SGD:  # the paper: SGD with momentum
            kwargs.setdefault("optimizer__momentum", 0.9)
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
        self.class_weight = class_weight
        self.lr_schedule = lr_schedule
        self.precision = precision
        self.random_state = random_state

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
            callbacks.append(("lr_schedule", _LRSchedule()))
        if self.verbose >= 2:
            callbacks.append(("progress_bar", ProgressBar()))
        return callbacks + [("print_log", PrintLog())]

    @property
    def classes_(self):
        return self.label_encoder_.classes_

    # -- validation and what is learned from the data before the network is built
    def _check_params(self):
        checks = {
            "lr": isinstance(self.lr, Real) and self.lr > 0,
            "max_epochs": isinstance(self.max_epochs, Integral) and self.max_epochs >= 0,
            "batch_size": isinstance(self.batch_size, Integral)
            and (self.batch_size >= 1 or self.batch_size == -1),
            "random_translate": isinstance(self.random_translate, Real)
            and 0 <= self.random_translate < 0.5,
            "validation_frequency": self.validation_frequency is None
            or (isinstance(self.validation_frequency, Integral) and self.validation_frequency > 0),
            "lr_schedule": self.lr_schedule in LR_SCHEDULES,
            "precision": self.precision in PRECISIONS,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"invalid {name}={getattr(self, name)!r}; see the docstring")

    def _check_Xy(self, X, y):
        X = check_images(X)
        y = column_or_1d(y, warn=True)
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
        self.class_weight_ = (
            None
            if self.class_weight is None
            else compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        )

    def _normalization(self, X):
        """Per-channel (mean, std) for the inputs; here, measured on the training data."""
        return _channel_stats(X)

    def _module_kwargs(self):
        """What the data says about the network's shape."""
        return {"n_classes": len(self.classes_)}

    # -- skorch hooks
    def initialize_module(self):
        kwargs = {**self._module_kwargs(), **self.get_params_for("module")}
        self.module_ = self.initialized_instance(self.module, kwargs)
        return self

    def initialize_criterion(self):
        kwargs = self.get_params_for("criterion")
        if self.class_weight_ is not None:
            kwargs["weight"] = torch.as_tensor(self.class_weight_, dtype=torch.float32)
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    def initialize(self):
        self._check_params()
        super().initialize()
        device_type = torch.device(self.device).type
        fp16 = self.precision == "fp16"
        self.grad_scaler_ = torch.amp.GradScaler(device_type) if fp16 else None
        return self

    def get_split_datasets(self, X, y=None, **fit_params):
        split = self.train_split
        dataset = self.get_dataset(X, y)
        if split is None:
            return dataset, None
        if isinstance(split, tuple):
            X_valid, y_valid = self._check_Xy(*split)
            return dataset, self.get_dataset(X_valid, self._encode(y_valid))
        if isinstance(split, Real):
            split = ValidSplit(float(split), stratified=True, random_state=self._seed())
        return split(dataset, y, **fit_params)

    def infer(self, x, **fit_params):
        """Move a uint8 NHWC batch to the device, convert, augment, normalise, forward."""
        x = to_network_input(x, self.mean_, self.std_, self.device)
        if self.module_.training:
            x = self._augment(x)
        dtype = PRECISIONS[self.precision]
        with torch.autocast(x.device.type, dtype=dtype) if dtype else nullcontext():
            return self.module_(x, **fit_params).float()

    def _augment(self, x):
        n, _, h, w = x.shape
        if self.random_flip:
            flip = torch.rand(n, device=x.device) < 0.5
            x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
        if self.random_translate:
            theta = torch.zeros(n, 2, 3, device=x.device)
            theta[:, 0, 0] = theta[:, 1, 1] = 1
            max_shift = torch.tensor([w, h], device=x.device) * self.random_translate
            shift = torch.round((torch.rand(n, 2, device=x.device) * 2 - 1) * max_shift)
            theta[:, :, 2] = -2 * shift / torch.tensor([w, h], device=x.device)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        return x

    def train_step_single(self, batch, **fit_params):
        if self.grad_scaler_ is None:
            return super().train_step_single(batch, **fit_params)
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.grad_scaler_.scale(loss).backward()
        return {"loss": loss, "y_pred": y_pred}

    def _step_optimizer(self, step_fn):
        if self.grad_scaler_ is None:
            return super()._step_optimizer(step_fn)
        step_fn()
        for name in self._optimizers:
            self.grad_scaler_.step(getattr(self, name + "_"))
        self.grad_scaler_.update()

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
        X, y = self._check_Xy(X, y)
        with self._seeded():
            if not self.initialized_:
                self._learn_data(X, y)
                self.initialize()
            super().partial_fit(X, self._encode(y), **fit_params)
        return self

    def _check_predict_images(self, X):
        self.check_is_fitted()
        X = check_images(X)
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
        return super().predict_proba(self._check_predict_images(X))

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
