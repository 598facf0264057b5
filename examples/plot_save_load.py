"""
Save and load a fitted pipeline safely
======================================

:func:`sk_animals.save` writes a fitted pipeline, loader included, as one ``.skmodel``
file: the networks' weights as safetensors and everything else (steps, parameters,
classes, image size, versions) as JSON. :func:`sk_animals.load` rebuilds it from those
two parts alone. It predicts from file paths after loading, on a machine without a GPU
too.

Why not ``joblib.dump``/``joblib.load``? A ``.joblib`` file is a pickle, and unpickling
runs whatever code the file's author put in it, with your permissions. A model file
downloaded or sent to you is then a program. Loading a ``.skmodel`` file unpickles
nothing and calls no ``torch.load``; only the package's own estimator classes are
rebuilt. ``sk-animals predict`` reads ``.skmodel`` files, and a ``.joblib`` only with
``--trust-pickle``.
"""

import sys
import tempfile
from pathlib import Path

import joblib
import numpy as np
from sklearn.pipeline import make_pipeline

import sk_animals
from sk_animals import ImageLoader, load_image_folder, make_image_folder
from sk_animals.scratch import ScratchCNNClassifier

# A folder with one subfolder per class: yours, or the built-in shapes written to disk.
folder = (
    sys.argv[1]
    if len(sys.argv) > 1
    else make_image_folder(n_samples=200, n_classes=2, size=32, random_state=0)
)
data = load_image_folder(folder)

pipe = make_pipeline(ImageLoader(32), ScratchCNNClassifier(max_epochs=3, depth=3, verbose=0))
pipe.fit(data.data, data.target)

# %%
# Save, then load: the loaded pipeline predicts exactly as the fitted one.
path = Path(tempfile.mkdtemp()) / "model.skmodel"
sk_animals.save(pipe, path)
loaded = sk_animals.load(path)
same = np.array_equal(loaded.predict_proba(data.data[:10]), pipe.predict_proba(data.data[:10]))
print(f"{path.stat().st_size / 1e6:.2f} MB; identical predictions after loading: {same}")
print("steps:", [name for name, _ in loaded.steps], "classes:", loaded.classes_.tolist())

# %%
# A pickle is refused, not run: ``load`` reads only files that :func:`sk_animals.save`
# wrote. (``joblib.load`` would run the pickle; use it only on files you made.)
pickled = path.with_suffix(".joblib")
joblib.dump(pipe, pickled)
try:
    sk_animals.load(pickled)
except ValueError as exc:
    print("refused:", exc)
