"""skorch callbacks of the image classifiers: per-iteration scores and learning-rate schedules."""

import math

import numpy as np
import torch
from skorch.callbacks import Callback, LRScheduler
from skorch.dataset import unpack_data

__all__ = ["IterationLRSchedule", "IterationScores", "ProgressLine"]


class IterationScores(Callback):
    """Record accuracy per iteration and epoch, and validate every k iterations.

    Writes, per training batch (iteration), ``train_acc`` beside skorch's
    ``train_loss``; per epoch ``train_acc``, ``valid_acc`` and ``valid_acc_best``; and,
    when the net's ``validation_frequency`` is set, ``valid_loss`` and ``valid_acc`` on
    the training batch after which the whole validation set was scored, as MATLAB's
    ``ValidationFrequency`` does. Accuracy of a training batch is measured in training
    mode, as MATLAB's mini-batch accuracy is. The per-batch values stay on the device
    and are read back once per epoch (see ``ImageClassifier.run_single_epoch``). A loss
    that is not finite stops training at the end of its epoch with a
    :class:`FloatingPointError` naming the epoch and the iteration. The validation set
    is held only while training, never in a fitted (or pickled) net.
    """

    def on_train_begin(self, net, **kwargs):
        self.best_ = max((e.get("valid_acc", -np.inf) for e in net.history), default=-np.inf)
        self.iteration_ = sum(
            "train_loss" in batch for epoch in net.history for batch in epoch["batches"]
        )

    def on_epoch_begin(self, net, dataset_valid=None, **kwargs):
        self.dataset_valid_ = dataset_valid
        self.correct_ = {True: 0, False: 0}  # device tensors once counted: no waiting
        self.seen_ = {True: 0, False: 0}
        self.first_iteration_ = self.iteration_ + 1

    def on_train_end(self, net, **kwargs):
        self.dataset_valid_ = None  # a fitted net holds parameters, never data
        self.correct_ = {True: 0, False: 0}  # nor device tensors

    @staticmethod
    def _count(batch, y_pred):
        """(correct predictions as a device tensor, batch size) of one batch."""
        yi = unpack_data(batch)[1].to(y_pred.device, non_blocking=True)
        return (y_pred.argmax(1) == yi).sum(), len(yi)

    def on_batch_end(self, net, batch, training, y_pred=None, loss=None, **kwargs):
        correct, n = self._count(batch, y_pred)
        self.correct_[training] = self.correct_[training] + correct
        self.seen_[training] += n
        net.record_later("train_acc" if training else "valid_acc", correct / n)
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
            loss = loss + step["loss"].detach().float() * n
            correct = correct + batch_correct
            seen += n
        loss, correct = torch.stack([loss, correct.float()]).tolist()
        return loss / seen, correct / seen

    def _check_finite(self, net):
        losses = net.history[-1, "batches", :, "train_loss"]
        bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
        if bad is not None:
            raise FloatingPointError(
                f"the training loss became {losses[bad]} in epoch {len(net.history)} "
                f"(iteration {self.first_iteration_ + bad}); lr={net.lr!r} is probably too "
                "large: lower it"
            )

    def on_epoch_end(self, net, **kwargs):
        if self.seen_[True]:
            self._check_finite(net)
        for training, name in ((True, "train_acc"), (False, "valid_acc")):
            if self.seen_[training]:
                correct = int(self.correct_[training])
                net.history.record(name, correct / self.seen_[training])
        if self.seen_[False]:
            acc = net.history[-1, "valid_acc"]
            net.history.record("valid_acc_best", bool(acc > self.best_))
            self.best_ = max(self.best_, acc)


class IterationLRSchedule(LRScheduler):
    """skorch's LRScheduler for a one-cycle or cosine schedule over every iteration.

    The number of iterations is known only once the training set is split off, so the
    torch scheduler is built at the first epoch; ``net.lr`` (and each parameter group's
    own learning rate) is the peak. The learning rate of every iteration is recorded as
    ``lr`` in the history's batches.

    Parameters
    ----------
    policy : {"onecycle", "cosine"}
    """

    def __init__(self, policy):
        super().__init__(policy, step_every="batch", event_name="lr")

    def initialize(self):
        self.lr_scheduler_ = None
        self.batch_idx_ = 0
        return self

    def on_train_begin(self, net, **kwargs):
        self.lr_scheduler_ = None

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        if self.lr_scheduler_ is not None:
            return
        batch_size = len(dataset_train) if net.batch_size == -1 else net.batch_size
        steps = net.max_epochs * math.ceil(len(dataset_train) / batch_size)
        optimizer = net.optimizer_
        for group in optimizer.param_groups:  # the peak, also when fit is called again
            group.setdefault("peak_lr", group["lr"])
            group["lr"] = group["peak_lr"]
        if self.policy == "onecycle":
            self.lr_scheduler_ = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=[g["peak_lr"] for g in optimizer.param_groups],
                total_steps=steps,
                cycle_momentum=optimizer.defaults.get("momentum", 0) > 0,
            )
        else:
            self.lr_scheduler_ = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)


class ProgressLine(Callback):
    """One live tqdm line for a fit: label, epoch, images per second and time left.

    Parameters
    ----------
    label : str, default=""
        What is being fitted (``"scratch: fold"``, ``"transfer: budget 50/class"``).
    """

    def __init__(self, label=""):
        self.label = label

    def on_train_begin(self, net, **kwargs):
        self.bar_ = None

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        if self.bar_ is None:
            from tqdm.auto import tqdm

            total = net.max_epochs * len(dataset_train)
            self.bar_ = tqdm(total=total, unit="img", leave=False, dynamic_ncols=True)
        self.bar_.set_description(f"{self.label} epoch {len(net.history)}/{net.max_epochs}")

    def on_batch_end(self, net, batch, training, **kwargs):
        if training and self.bar_ is not None:
            self.bar_.update(len(batch[1]))

    def on_train_end(self, net, **kwargs):
        if getattr(self, "bar_", None) is not None:
            self.bar_.close()
        self.bar_ = None
