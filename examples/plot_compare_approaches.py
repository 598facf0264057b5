"""
Scratch or transfer? Comparing the two approaches
=================================================

:func:`~sk_animals.evaluation.compare` first sets aside one common test set, then
cross-validates both approaches on the rest, fits each once more watching a held-out
validation set, and scores both on the same test images: accuracies with 95% intervals,
and the difference between them with a paired-bootstrap interval and McNemar's test,
summed up in a verdict. ``paper_protocol`` gives the paper's settings; here they are
scaled down to run in seconds. ``budgets=[10, 25, 50]`` would add the data-budget curve.

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
# The paper used 100 and 227 pixels; 48 is enough for these shapes.
approaches = paper_protocol(
    backbone="squeezenet1_1", weights=weights, per_class=60, epochs=3, image_size=48
)
result = compare(folder, approaches, cv=3, verbose=0)
print("\n".join(result.verdicts()))
print(result.to_markdown())

# %%
# Computing writes nothing; ``save`` writes ``report.html`` (one self-contained file),
# ``report.md``, ``metrics.json`` and the fitted pipelines as ``.skmodel`` files.
paths = result.save(tempfile.mkdtemp())
print(paths["report.html"])
