"""The ONNX graph of a network, traced in memory, and onnxruntime sessions of frozen bodies.

What :mod:`~sk_animals.export` writes to files and what ``PretrainedFeatures`` runs its
features in (``engine="onnxruntime"``) share this: the TorchScript exporter's trace of a
module that takes uint8 NHWC images, with the float conversion and normalisation inside.
"""

import collections
import io
import threading
import warnings

import numpy as np
import torch
from torch import nn

from ._featurecache import body_key
from ._tensors import to_network_input
from ._text import first_line
from ._training import eager
from .deploy import INPUT, OUTPUT, import_optional

__all__ = ["OPSET", "TOLERANCE", "features_session"]

#: The ONNX opset written (torch's TorchScript exporter).
OPSET = 17
#: The largest absolute difference from ``predict_proba`` an export may have.
TOLERANCE = 1e-4


class _Features(nn.Module):
    """uint8 NHWC images to the flattened output of a frozen body."""

    def __init__(self, body, mean, std):
        super().__init__()
        self.network = body
        for name, value in [("mean", mean), ("std", std)]:
            self.register_buffer(name, torch.as_tensor(np.asarray(value), dtype=torch.float32))

    def forward(self, images):
        x = to_network_input(images, self.mean, self.std, images.device)
        return self.network(x).flatten(1)


def _trace(module, size):
    """The ONNX bytes of ``module`` for uint8 images of ``size``, batch dimension dynamic."""
    example = torch.zeros(2, *size, 3, dtype=torch.uint8)
    buffer = io.BytesIO()
    try:  # eager: torch's exporter cannot trace a compiled forward (compile=True)
        with torch.no_grad(), warnings.catch_warnings(), eager(module.network):
            # the TorchScript exporter's notices; the parity check tests the graph itself
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module,
                (example,),
                buffer,
                dynamo=False,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                opset_version=OPSET,
                do_constant_folding=True,
            )
    except Exception as exc:  # noqa: BLE001 - the exporter's own reason, in one line
        reason = first_line(exc)
        raise ValueError(f"cannot export {type(module.network).__name__}: {reason}") from exc
    return buffer.getvalue()


#: onnxruntime sessions of frozen bodies (or why one could not be made) by the body's
#: digest and image size, newest last; the lock makes one export at a time
_SESSIONS = collections.OrderedDict()
_LOCK = threading.Lock()
#: sessions kept: each holds a copy of its body's weights (AlexNet's: 233 MB)
MAX_SESSIONS = 2


def features_session(body, mean, std, size):
    """An onnxruntime session computing the flattened output of the frozen ``body`` from
    uint8 images ``(n, *size, 3)``, normalised by ``mean`` and ``std`` inside the graph.

    Exported in memory per body (by its weights' digest, so that the clones of
    cross-validation share it) and size (the graph bakes it in: TensorFlow-style "same"
    padding depends on it); the last ``MAX_SESSIONS`` are kept, so a body is exported
    again only after two others. Its features are checked on random images against
    torch's: a gap over ``TOLERANCE`` times their largest magnitude, or a body the
    exporter cannot trace, is refused with a ``ValueError`` (again at each call, without
    exporting again), as export refuses a graph that disagrees.
    """
    size = tuple(int(v) for v in size)
    key = (body_key(body, mean, std, what="onnxruntime"), size)
    with _LOCK:
        if key not in _SESSIONS:
            try:
                _SESSIONS[key] = _features_session(body, mean, std, size)
            except ValueError as exc:
                _SESSIONS[key] = str(exc)  # the reason only: no frames, no images kept
            while len(_SESSIONS) > MAX_SESSIONS:
                _SESSIONS.popitem(last=False)
        _SESSIONS.move_to_end(key)
        found = _SESSIONS[key]
    if isinstance(found, str):
        raise ValueError(found)
    return found


def _features_session(body, mean, std, size):
    """The session of :func:`features_session`, exported and checked."""
    ort = import_optional("onnxruntime")
    module = _Features(body, mean, std).eval()
    try:
        data = _trace(module, size)
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        images = np.random.default_rng(0).integers(0, 256, (3, *size, 3), dtype=np.uint8)
        got = session.run(None, {INPUT: images})[0]
        with torch.inference_mode():
            want = module(torch.from_numpy(images)).numpy()
    finally:
        body.eval()
    gap, scale = float(np.abs(got - want).max()), max(1.0, float(np.abs(want).max()))
    if not gap <= TOLERANCE * scale:
        raise ValueError(
            f"cannot run {type(body).__name__} in onnxruntime exactly: its features differ "
            f"from torch's by {gap:.2g}"
        )
    return session
