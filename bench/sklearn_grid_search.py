"""Wall time of the Pipeline + GridSearchCV of issue 10 (target: under a minute on this 2-core machine).

BetaVAE (15 epochs, one hidden layer of 128) -> LogisticRegression on sklearn's 8x8 digits, a grid over
latent_dim in {2, 16} and beta in {1, 4}, 3-fold cross-validation: 12 fits plus the refit. tests/test_sklearn.py
checks what it picks; this script times it.
Run: make bench   (or .venv/bin/python bench/sklearn_grid_search.py)
"""

from __future__ import annotations

import time

from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from vaelab.sklearn import BetaVAE


def grid_search() -> GridSearchCV:
    """The grid search of the acceptance test, unfitted."""
    pipe = Pipeline([
        ("vae", BetaVAE(hidden=(128,), epochs=15, value_range=(0, 16), random_state=0)),
        ("clf", LogisticRegression(max_iter=2000)),
    ])  # fmt: skip
    return GridSearchCV(pipe, {"vae__latent_dim": [2, 16], "vae__beta": [1.0, 4.0]}, cv=3)


def main() -> None:
    from common import write_result  # bench/ is on sys.path when this script runs (tests import grid_search alone)

    x, y = load_digits(return_X_y=True)
    start = time.perf_counter()
    grid = grid_search().fit(x, y)
    seconds = time.perf_counter() - start
    print(f"sklearn grid search (digits, 12 fits + refit): {seconds:.1f} s (target < 60 s); "
          f"best {grid.best_params_}, cv accuracy {grid.best_score_:.3f}")  # fmt: skip
    write_result("sklearn_grid_search", {"seconds": seconds, "fits": 13, "best_params": grid.best_params_,
                                         "cv_accuracy": grid.best_score_})  # fmt: skip


if __name__ == "__main__":
    main()
