"""
Grid search over a pipeline
===========================

The classifiers are scikit-learn estimators, so ``GridSearchCV`` tunes them inside a
Pipeline with the usual ``step__parameter`` names, including skorch's prefixed ones.
"""

import sys

from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sk_animals import ImageLoader, load_image_folder, make_image_folder
from sk_animals.scratch import ScratchCNNClassifier

# A folder with one subfolder per class: yours, or the built-in shapes written to disk.
folder = (
    sys.argv[1]
    if len(sys.argv) > 1
    else make_image_folder(n_samples=300, n_classes=3, size=32, random_state=0)
)
data = load_image_folder(folder)

pipe = make_pipeline(
    ImageLoader(32), ScratchCNNClassifier(depth=3, max_epochs=5, batch_size=32, verbose=0)
)
grid = {
    "scratchcnnclassifier__lr": [0.01, 0.1],
    "scratchcnnclassifier__optimizer__nesterov": [False, True],
}
search = GridSearchCV(pipe, grid, cv=3).fit(data.data, data.target)
print("best:", search.best_params_, f"accuracy {search.best_score_:.3f}")
