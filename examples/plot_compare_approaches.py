"""
Scratch or transfer? Comparing the two approaches
=================================================

:func:`~sk_animals.evaluation.compare` cross-validates both approaches on the same
images, fits each once more watching a held-out validation set, and writes the paper's
table, curves, confusion matrices and prediction grids. ``paper_protocol`` gives the
paper's settings; here they are scaled down to run in seconds.

Offline, torchvision cannot download ImageNet weights, so the transfer model below
starts from random weights unless the weights are cached in ``$TORCH_HOME`` or you pass
a state-dict file as the second argument.
"""

import sys
import tempfile

from sk_animals import make_image_folder
from sk_animals.evaluation import compare, paper_protocol

# A folder with one subfolder per class: yours, or the built-in shapes written to disk.
folder = (
    sys.argv[1]
    if len(sys.argv) > 1
    else make_image_folder(n_samples=300, n_classes=3, size=48, random_state=0)
)
weights = sys.argv[2] if len(sys.argv) > 2 else None

# %%
# The paper's two approaches with a smaller budget: 60 images per class, 3 epochs.
approaches = paper_protocol(backbone="squeezenet1_1", weights=weights, per_class=60, epochs=3)
for approach in approaches:
    approach.image_size = 48  # the paper used 100 and 227 pixels
result = compare(folder, approaches, cv=3, out_dir=tempfile.mkdtemp(), verbose=0)
print(result.to_markdown())
