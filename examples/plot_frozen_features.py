"""
Transfer with frozen features and a cheap head
==============================================

:class:`~sk_animals.transfer.PretrainedFeatures` runs a pretrained backbone without its
last layer, giving one vector per image. Any scikit-learn classifier can sit on top, and
searching over it is cheap when the features are cached with ``memory=``.

Offline, pass a state-dict file of torchvision's squeezenet1_1 as the second argument
(or cache the weights in ``$TORCH_HOME``); otherwise the backbone is random, which shows
the mechanics but not the benefit of transfer.
"""

import sys
import tempfile

from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sk_animals import load_image_folder, loader_for, make_image_folder
from sk_animals.transfer import PretrainedFeatures

# A folder with one subfolder per class: yours, or the built-in shapes written to disk.
folder = (
    sys.argv[1]
    if len(sys.argv) > 1
    else make_image_folder(n_samples=200, n_classes=2, size=64, random_state=0)
)
weights = sys.argv[2] if len(sys.argv) > 2 else None
data = load_image_folder(folder)

features = PretrainedFeatures("squeezenet1_1", weights=weights, memory=tempfile.mkdtemp())
pipe = Pipeline(
    [
        ("load", loader_for("squeezenet1_1", weights, size=64)),  # the weights' transform
        ("features", features),
        ("head", LogisticRegression(max_iter=1000)),
    ]
)
search = GridSearchCV(pipe, {"head__C": [0.01, 0.1, 1.0]}, cv=3).fit(data.data, data.target)
print("best C:", search.best_params_["head__C"], f"accuracy {search.best_score_:.3f}")
