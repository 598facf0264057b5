"""ScratchCNNClassifier: the paper's CNN trained from random initialisation.

The public home of the scratch networks, :class:`PaperCNN` and :class:`ResidualCNN`.
"""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval

from ._base import ImageClassifier, shared_docs
from ._networks import PaperCNN, ResidualCNN

__all__ = ["RECOMMENDED", "PaperCNN", "ResidualCNN", "ScratchCNNClassifier"]

#: The recommended preset: what the same budget (10 epochs, 1500 images per class,
#: 100x100) can do. A compact residual network (:class:`~sk_animals.scratch.ResidualCNN`),
#: channels-last where it trains in half precision on a GPU (NCHW on a CPU: see
#: ``channels_last``), a one-cycle schedule peaking at lr 0.1 with Nesterov momentum,
#: weight decay 5e-4, label smoothing 0.1, random flips and shifts of up to 10%, and
#: test-time flips. The training settings alone also lift the paper's network. See
#: ``benchmarks/bench_scratch_cifar.py`` for the measurement.
RECOMMENDED = {
    "module": ResidualCNN,
    "width": 32,
    "channels_last": "auto",
    "lr": 0.1,
    "lr_schedule": "onecycle",
    "optimizer__nesterov": True,
    "optimizer__weight_decay": 5e-4,
    "criterion__label_smoothing": 0.1,
    "random_flip": True,
    "random_translate": 0.1,
    "tta": True,
}


@shared_docs
class ScratchCNNClassifier(ImageClassifier):
    """The paper's 25-layer CNN, trained from scratch, as a scikit-learn classifier.

    Defaults reproduce the paper: SGD with momentum 0.9, learning rate 0.01, 10
    epochs, mini-batches of 128 (MATLAB's default), data shuffled every epoch, no
    augmentation. ``ScratchCNNClassifier(**RECOMMENDED)`` is the recommended preset
    (:data:`~sk_animals.scratch.RECOMMENDED`): a compact residual network and better
    training within the same budget. Any image size of at least ``2**depth`` pixels
    works; the paper used 100x100.

    Parameters
    ----------
    module : torch.nn.Module class, default=PaperCNN
        Built with ``n_classes``, ``image_size``, ``width``, ``depth`` and ``dropout``;
        :class:`~sk_animals.scratch.ResidualCNN` is the recommended alternative.
    width : int, default=8
        Filters of the first convolution; each block doubles them.
    depth : int, default=4
        Number of conv/batch-norm/ReLU/max-pool blocks.
    dropout : float, default=0.0
        Dropout before the fully connected layers.
    lr : float, default=0.01
        Learning rate.
    max_epochs : int, default=10
        Passes over the training data, shuffled every epoch; 0 trains nothing and warns
        (a ``ConvergenceWarning``).
    batch_size : int, default=128
        Mini-batch size (MATLAB's default).
    %(shared_parameters)s

    Attributes
    ----------
    %(shared_attributes)s
        ``mean_`` and ``std_`` are the per-channel statistics of the training images
        (MATLAB's zero-centre input normalisation, with scaling).

    See Also
    --------
    sk_animals.transfer.AlexNetTransferClassifier : The paper's transfer approach.
    sk_animals.scratch.PaperCNN : The network and its 25-layer correspondence.

    Examples
    --------
    >>> from sk_animals.datasets import make_image_dataset
    >>> from sk_animals.scratch import ScratchCNNClassifier
    >>> X, y = make_image_dataset(n_samples=32, n_classes=2, size=32, random_state=0)
    >>> clf = ScratchCNNClassifier(max_epochs=2, batch_size=16, random_state=0, verbose=0)
    >>> clf.fit(X, y).predict(X[:3]).shape
    (3,)
    >>> clf.classes_.tolist()
    ['circle', 'cross']
    """

    _parameter_constraints = {
        **ImageClassifier._parameter_constraints,
        "width": [Interval(Integral, 1, None, closed="left")],
        "depth": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(self, module=PaperCNN, *, width=8, depth=4, dropout=0.0, **kwargs):
        super().__init__(module, **kwargs)  # the base's defaults are the paper's
        self.width = width
        self.depth = depth
        self.dropout = dropout

    def min_image_size(self):
        """The smallest image side ``module`` takes at this ``depth`` (checked before work)."""
        return self.module.min_size(self.depth) if hasattr(self.module, "min_size") else 1

    def _module_kwargs(self):
        return {
            **super()._module_kwargs(),
            "image_size": self.image_size_,
            "width": self.width,
            "depth": self.depth,
            "dropout": self.dropout,
        }
