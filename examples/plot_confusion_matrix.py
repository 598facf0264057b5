"""
Confusion matrix and per-class rates
====================================

scikit-learn's metrics work on the labels the classifiers predict;
:func:`~sk_animals.evaluation.per_class_rates` adds each class's true- and
false-positive rate, as the paper reported.
"""

import sys

import matplotlib.pyplot as plt
from sklearn.metrics import ConfusionMatrixDisplay, classification_report
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from sk_animals import ImageLoader, load_image_folder, make_image_folder
from sk_animals.evaluation import per_class_rates
from sk_animals.scratch import RECOMMENDED, ScratchCNNClassifier

# A folder with one subfolder per class: yours, or the built-in shapes written to disk.
folder = (
    sys.argv[1]
    if len(sys.argv) > 1
    else make_image_folder(n_samples=600, n_classes=4, size=48, random_state=0)
)
data = load_image_folder(folder)
train, test, y_train, y_test = train_test_split(
    data.data, data.target, test_size=0.3, stratify=data.target, random_state=0
)
# the paper's network with the recommended training (see "A first pipeline")
training = {k: v for k, v in RECOMMENDED.items() if k not in ("module", "width")}
pipe = make_pipeline(
    ImageLoader(48),
    ScratchCNNClassifier(**training, max_epochs=30, batch_size=32, random_state=0, verbose=0),
)
predicted = pipe.fit(train, y_train).predict(test)

# %%
print(classification_report(y_test, predicted))
for label, rates in per_class_rates(y_test, predicted, pipe.classes_).items():
    print(f"{label:>10}: TPR {rates['tpr']:.2f}  FPR {rates['fpr']:.2f}")
ConfusionMatrixDisplay.from_predictions(y_test, predicted, normalize="true")
plt.title("row-normalised confusion matrix")
plt.show()
