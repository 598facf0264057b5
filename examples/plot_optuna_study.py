"""
An Optuna study with pruning
============================

:func:`~sk_animals.tuning.tune` samples hyperparameters from a default search space,
stops trials whose validation accuracy trails the others after any epoch, and refits
the best. The study here lives in memory. Give ``storage="study.db"`` (SQLite) and it
survives a crash: running the same script again resumes it, no ``study_name`` needed
(the default is ``"sk-animals-<classifier class>"``). A PostgreSQL URL, or a journal file
on a shared file system, lets processes on several machines share one study.
"""

import sys

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from sklearn.pipeline import make_pipeline

from sk_animals import ImageLoader, load_image_folder, make_image_folder
from sk_animals.scratch import ScratchCNNClassifier
from sk_animals.tuning import search_space, trial_counts, tune

optuna.logging.set_verbosity(optuna.logging.WARNING)
# A folder with one subfolder per class: yours, or the built-in shapes written to disk.
folder = (
    sys.argv[1]
    if len(sys.argv) > 1
    else make_image_folder(n_samples=300, n_classes=3, size=32, random_state=0)
)
data = load_image_folder(folder)

pipe = make_pipeline(ImageLoader(32), ScratchCNNClassifier(verbose=0))
space = search_space(pipe[-1])  # the default space, narrowed to run in seconds
space.update(
    max_epochs=IntDistribution(3, 8),
    width=CategoricalDistribution([8, 16]),
    depth=IntDistribution(2, 3),
)
best, study = tune(pipe, data.data, data.target, n_trials=8, param_distributions=space)
print("trials:", trial_counts(study))  # complete, pruned, fail, running, waiting
print(f"best validation accuracy {study.best_value:.3f} with {study.best_params}")
