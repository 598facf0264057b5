"""
Save and load a fitted pipeline with joblib
===========================================

A fitted pipeline, loader included, is one file. It predicts from file paths after
loading, on a machine without a GPU too. Only load files you trust: unpickling runs code.
"""

import sys
import tempfile
from pathlib import Path

import joblib
import numpy as np
from sklearn.pipeline import make_pipeline

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
path = Path(tempfile.mkdtemp()) / "model.joblib"
joblib.dump(pipe, path)

loaded = joblib.load(path)
same = np.array_equal(loaded.predict_proba(data.data[:10]), pipe.predict_proba(data.data[:10]))
print(f"{path.stat().st_size / 1e6:.1f} MB; identical predictions after loading: {same}")
