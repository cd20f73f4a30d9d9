"""The fixed test split of an uploaded dataset that brings no x_test / y_test of its own.

Documented so anyone can rebuild it outside the service (README, manifest.json):
rows `numpy.random.default_rng(0).permutation(n)[:max(1, round(0.2 * n))]` are the test split;
the others, in their original order, are the training data.
"""

import numpy as np

TEST_FRACTION = 0.2
DESCRIPTION = (
    "fixed split: rows numpy.random.default_rng(0).permutation(n)[:max(1, round(0.2 * n))] "
    "of the file's x are the test split"
)


UNLABELLED = "none: an unlabelled file is a transfer set, and a transfer set uses every row"


def describe(test_rows: int, labelled: bool) -> str:
    """What a dataset file's `info["test_split"]` says."""
    if not labelled:
        return UNLABELLED
    return "the file's own x_test / y_test" if test_rows else DESCRIPTION


def fixed_test_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) of an n-row array, each sorted ascending."""
    if n < 2:
        raise ValueError("a dataset needs at least 2 rows to split off a test set")
    permutation = np.random.default_rng(0).permutation(n)
    n_test = max(1, round(TEST_FRACTION * n))
    return np.sort(permutation[n_test:]), np.sort(permutation[:n_test])
