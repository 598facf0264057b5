"""Every override of skorch internals, in one place: check these when skorch is upgraded.

skorch (``skorch/net.py``, 1.x) runs the training loop; the image classifiers change a few
of its steps. Each method here names the skorch method it mirrors or extends, and what it
relies on that skorch does not document (``EarlyStopping.misses_``, ``_optimizers``,
``virtual_params_``' application order, the history's batch dicts). Nothing else in the
package reads a skorch private. torch's in-place compilation (``nn.Module.compile``) is
undone here too, the one place that touches the attribute it sets (``_compiled_call_impl``,
which torch's own ``nn.Module.__getstate__`` drops the same way).
"""

import os
from contextlib import contextmanager, nullcontext, suppress

import torch
from skorch.callbacks import BatchScoring, EarlyStopping, LRScheduler, ProgressBar
from skorch.dataset import get_len, unpack_data

from ._callbacks import IterationLRSchedule
from ._tensors import MappedPages
from .exceptions import StopEarly

__all__ = [
    "PRECISIONS",
    "StopEarly",
    "TrainingMixin",
    "eager",
    "inductor_cache",
    "native_bf16",
    "resolve_precision",
]

#: Autocast dtypes of the ``precision`` parameter ("auto" resolves to one of the others).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device):
    """Whether ``device`` computes bfloat16 natively: a CUDA device with bf16, a CPU with
    AVX-512 BF16 or AMX (elsewhere torch emulates bf16, slower than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def resolve_precision(precision, device):
    """The precision that runs: ``"auto"`` is bf16 where it is native, else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def _images_of(dataset):
    """The image array behind a skorch dataset (or a torch ``Subset`` of one)."""
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    return getattr(dataset, "X", None)


def _set_lr(net, param, value):
    """skorch virtual-parameter setter of ``lr``, ``optimizer__lr`` and ``head_lr_factor``.

    Mirrors ``skorch.setter.optimizer_setter``, which sets one learning rate on every
    parameter group: here each group gets the rate that the net's one rule
    (``_lr_groups``) derives, at base rate ``value`` for ``optimizer__lr`` (the optimizer
    alone, as in skorch) and ``net.lr`` otherwise. A learning-rate schedule then peaks
    at the new rates (its recorded ``peak_lr`` is dropped).
    """
    if param != "optimizer__lr":
        setattr(net, param, value)
    lr = value if param == "optimizer__lr" else net.lr
    named = list(net.get_all_learnable_params())
    (groups,), _ = super(TrainingMixin, net).get_params_for_optimizer("optimizer", named)
    derived = net._lr_groups(groups, lr)
    for group, new in zip(net.optimizer_.param_groups, derived, strict=True):
        group["lr"] = new.get("lr", lr)
        group.pop("peak_lr", None)


def _uncompile(module):
    """Undo ``module.compile()``: its forward runs eagerly again; return what it had compiled.

    ``nn.Module.compile`` keeps the compiled forward in the instance attribute
    ``_compiled_call_impl`` (torch 2.2 to 2.x) and ``nn.Module.__call__`` uses it when it is
    set; torch's ``__getstate__`` drops it the same way, which is why a pickled or copied
    network is eager.
    """
    return vars(module).pop("_compiled_call_impl", None)


@contextmanager
def eager(module):
    """Run ``module`` uncompiled inside the block, then give it back its compiled forward.

    For one-off passes (a frozen body's features, computed once per fit): compiling a graph
    for them would cost more than it saves. What the compiled forward had compiled is kept.
    """
    compiled = _uncompile(module)
    try:
        yield module
    finally:
        if compiled is not None:
            module._compiled_call_impl = compiled


@contextmanager
def inductor_cache(cache_dir):
    """Keep torch's inductor cache in ``cache_dir/inductor`` inside the block.

    ``sk-animals compare`` and ``tune`` with ``--cache-dir DIR`` put the compiled kernels of
    ``compile=True`` beside the decoded images, so that the next run with the same folder
    starts warm. A ``TORCHINDUCTOR_CACHE_DIR`` set by the user wins, and ``None`` changes
    nothing; the variable is restored when the block ends (processes started inside it,
    such as ``n_jobs`` workers and torch's compile workers, inherit it).
    """
    if cache_dir is None or "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        yield
        return
    path = os.path.abspath(os.path.join(os.path.expanduser(cache_dir), "inductor"))
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = path
    try:
        yield
    finally:
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)


def _set_compile(net, param, value):
    """skorch virtual-parameter setter of ``compile`` and ``compile__*`` on an initialized net.

    skorch re-initializes the module when one of them is set on an initialized net, which
    would throw away a fitted (or loaded) network's weights; here the network is compiled
    again in place with the new settings (or runs eagerly with ``compile=False``), and its
    weights and the optimizer's state are kept.
    """
    setattr(net, param, value)
    net._recompile()


class TrainingMixin:
    """The image classifiers' changes to skorch's ``NeuralNet`` training loop.

    - ``get_params_for_optimizer``: skorch's groups, each given its learning rate by
      ``_lr_groups`` (the one rule; identity here, the new head's factor in transfer).
    - ``_initialize_optimizer`` (skorch private): registers :func:`_set_lr` for the
      parameters in ``_LR_PARAMS``, so that ``set_params`` on a live net derives every
      group's rate by the same rule. skorch applies virtual parameters in registration
      order, and ``lr`` is registered last so that it wins over ``optimizer__lr``.
    - ``train_step_single`` and ``_step_optimizer`` (as skorch's ``AccelerateMixin``):
      fp16 with gradient scaling; ``_autocast`` gives bf16/fp16 autocast for ``infer``.
    - ``run_single_epoch``: skorch's epoch loop, with per-batch values kept on the device.
    - ``notify``: tells skorch's EarlyStopping (which raises ``KeyboardInterrupt``) from a
      real Ctrl-C, by its ``misses_`` and ``patience``.
    - ``torch_compile``: skorch's ``compile=True`` (``compile__*``: ``torch.compile``'s
      arguments) compiles the network in place (``nn.Module.compile``, torch >= 2.2) instead
      of wrapping it: ``module_`` stays the network's own class, with the state-dict keys
      of an eager one (no ``_orig_mod.`` prefix), so saved files do not change. The
      criterion is not compiled (one operation on the logits: a second graph to compile
      for nothing).
    - ``initialize_virtual_params``: registers :func:`_set_compile` for ``compile`` and
      ``compile__*``, so that setting them on a fitted or loaded net compiles (or
      uncompiles) it in place instead of re-initializing its weights as skorch would.
    - ``__setstate__``: skorch's, then the network compiled again when ``compile=True``
      (torch's ``nn.Module.__getstate__`` drops the compiled forward from pickles and
      copies).
    """

    _LR_PARAMS = ("optimizer__lr", "lr")  #: parameters whose setter is _set_lr, lr last

    def _lr_groups(self, groups, lr):
        """The optimizer's parameter groups with their learning rates at base rate ``lr``."""
        return groups

    def get_params_for_optimizer(self, prefix, named_parameters):
        """skorch's optimizer arguments, with the optimizer's defaults and each group's rate.

        The chosen optimizer's defaults (``_optimizer_defaults``: with SGD, ``momentum``
        0.9) are applied here, when the optimizer is built, so that they never become
        parameters of the estimator (and survive neither ``set_params`` nor ``clone``); an
        ``optimizer__*`` parameter you set wins.
        """
        args, kwargs = super().get_params_for_optimizer(prefix, named_parameters)
        if prefix == "optimizer":
            kwargs = {**self._optimizer_defaults(), **kwargs}
            args = (self._lr_groups(args[0], kwargs["lr"]), *args[1:])
        return args, kwargs

    def _initialize_optimizer(self, reason=None):
        super()._initialize_optimizer(reason)
        for param in self._LR_PARAMS:  # re-registered: the order is the order of application
            self.virtual_params_.pop(param, None)
            self._register_virtual_param(param, _set_lr)
        return self

    # -- torch.compile, in place
    def torch_compile(self, module, name):
        """skorch's ``torch_compile`` (called by ``_initialize_module`` and
        ``_initialize_criterion`` after the device step): with ``compile=True``, the network
        is compiled in place and returned itself; the criterion is returned as it is."""
        if getattr(self, "compile", False) and name in self._modules:
            module.compile(**self.get_params_for("compile"))
        return module

    def _recompile(self):
        """Compile ``module_`` again with the current ``compile*`` parameters, or undo its
        compilation when ``compile`` is False (an unfitted net has nothing to compile)."""
        module = getattr(self, "module_", None)
        if isinstance(module, torch.nn.Module):
            _uncompile(module)
            self.torch_compile(module, "module")

    def initialize_virtual_params(self):
        super().initialize_virtual_params()
        self._register_virtual_param(["compile", "compile__*"], _set_compile)

    def __setstate__(self, state):
        super().__setstate__(state)
        self._recompile()

    # -- mixed precision
    def _autocast(self, device_type):
        dtype = PRECISIONS[self.precision_]
        return torch.autocast(device_type, dtype=dtype) if dtype else nullcontext()

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

    # -- the epoch loop: per-batch values stay on the device until the epoch ends
    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """skorch's ``run_single_epoch`` without waiting for the device at every batch.

        skorch reads each batch's loss back to the host (``.item()``), which makes the
        host wait for the device at every iteration. Here the losses, and what the
        callbacks record with :meth:`record_later`, stay on the device and are read
        back together when the epoch ends (also when it is interrupted), before any
        ``on_epoch_end`` callback looks at them. With a skorch callback that reads
        each batch's values (``ProgressBar``, ``BatchScoring``, an ``LRScheduler``
        stepped every batch) they are read back after every batch instead. When the
        images are a memory map (an ``ImageLoader`` cache entry, a ``.npy`` opened with
        ``mmap_mode``), the pages read are released as the epoch goes
        (``MappedPages``), so a data set larger than memory trains with bounded
        resident memory.
        """
        if iterator is None:
            return
        self._pending_ = []
        every_batch = self._reads_batches()
        pages = MappedPages(_images_of(getattr(iterator, "dataset", None)))
        batch_count = 0
        try:
            for batch in iterator:
                self.notify("on_batch_begin", batch=batch, training=training)
                step = step_fn(batch, **fit_params)
                self.record_later(prefix + "_loss", step["loss"])
                self.history.record_batch(prefix + "_batch_size", get_len(batch[0]))
                if every_batch:
                    self.read_back()
                self.notify("on_batch_end", batch=batch, training=training, **step)
                pages.read(batch[0].nbytes)
                batch_count += 1
        except BaseException:
            with suppress(Exception):  # keep the error that stopped the epoch
                self.read_back()
            raise
        else:
            self.read_back()
        finally:
            pages.release()
        self.history.record(prefix + "_batch_count", batch_count)

    def _reads_batches(self):
        """Whether a callback reads the history's batch values as each batch ends."""
        return any(
            isinstance(cb, ProgressBar | BatchScoring)
            or (
                isinstance(cb, LRScheduler)
                and not isinstance(cb, IterationLRSchedule)
                and cb.step_every == "batch"
            )
            for _, cb in self.callbacks_
        )

    def record_later(self, key, value):
        """Record a scalar tensor in the history's current batch when it is read back."""
        self._pending_.append((self.history[-1]["batches"][-1], key, value.detach()))

    def read_back(self):
        """Write the pending values into the history, with one copy from the device."""
        pending, self._pending_ = getattr(self, "_pending_", []), []
        if pending:
            stacked = torch.stack([value.float().reshape(()) for *_, value in pending])
            for (batch, key, _), value in zip(pending, stacked.tolist(), strict=True):
                batch[key] = value

    def notify(self, method_name, **cb_kwargs):
        """skorch's ``notify``: EarlyStopping's ``KeyboardInterrupt`` is :class:`StopEarly`."""
        try:
            super().notify(method_name, **cb_kwargs)
        except KeyboardInterrupt:
            stopped = any(
                isinstance(cb, EarlyStopping) and cb.misses_ >= cb.patience
                for _, cb in self.callbacks_
            )
            if method_name == "on_epoch_end" and stopped:
                raise StopEarly from None
            raise
