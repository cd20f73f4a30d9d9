"""Builtin datasets that need no download: digits, mnist1d, synthetic."""

import numpy as np

from distillery.types.catalog.datasets import DigitsOptions, Mnist1dOptions, SyntheticOptions
from worker.data.registry import DATASETS, DatasetRequest, RawDataset

DIGIT_NAMES = [str(d) for d in range(10)]


@DATASETS.register("digits")
def load_digits(request: DatasetRequest) -> RawDataset:
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    options = DigitsOptions.model_validate(request.options)

    bunch = sklearn_digits()
    x = bunch.data.astype(np.float32)
    if options.layout == "image":
        x = x.reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    return RawDataset(
        x_train,
        y_train,
        x_test,
        y_test,
        10,
        DIGIT_NAMES,
        "sklearn.model_selection.train_test_split(load_digits().data, load_digits().target, "
        "test_size=0.2, random_state=0, stratify=target)",
    )


@DATASETS.register("mnist1d")
def load_mnist1d(request: DatasetRequest) -> RawDataset:
    from mnist1d.data import get_dataset_args, make_dataset

    options = Mnist1dOptions.model_validate(request.options)

    args = get_dataset_args()
    args.num_samples = options.num_samples
    args.seed = options.seed
    data = make_dataset(args)
    return RawDataset(
        np.asarray(data["x"], dtype=np.float32),
        np.asarray(data["y"], dtype=np.int64),
        np.asarray(data["x_test"], dtype=np.float32),
        np.asarray(data["y_test"], dtype=np.int64),
        10,
        DIGIT_NAMES,
        f"mnist1d.data.make_dataset with num_samples={args.num_samples}, seed={args.seed}: "
        "its x_test, y_test",
    )


@DATASETS.register("synthetic")
def load_synthetic(request: DatasetRequest) -> RawDataset:
    """Gaussian clusters: each class has a random mean; examples add isotropic noise."""
    options = SyntheticOptions.model_validate(request.options)
    shape = tuple(options.shape)
    num_classes, num_samples = options.num_classes, options.num_samples
    rng = np.random.default_rng(options.seed)
    means = rng.normal(size=(num_classes, *shape)).astype(np.float32)
    y = rng.integers(0, num_classes, size=num_samples).astype(np.int64)
    noise = rng.normal(size=(num_samples, *shape)).astype(np.float32)
    x = means[y] + options.noise * noise
    split = round(num_samples * 0.8)
    return RawDataset(
        x[:split],
        y[:split],
        x[split:],
        y[split:],
        num_classes,
        [str(c) for c in range(num_classes)],
        "the last 20% of the generated examples",
    )
