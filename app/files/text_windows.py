"""Text as language-model examples: the split rule every text dataset follows (numpy only, so
the upload check and the worker share it).

The corpus's bytes (or, for a teacher with its own tokenizer, its tokens), documents joined in
their order, are cut into windows of `context + 1`
bytes that start every `context` bytes (each window's input is its first `context` bytes, its
targets the last `context`: the next byte at each position). Windows are taken in runs of 16;
every tenth run (runs 9, 19, 29, ...) is the test split, the rest train (a job's
`val_fraction` then takes validation windows from those at random). Runs rather than single
windows keep a test window's neighbours, which share its text, mostly out of training. A text
too short for ten runs tests on its last run.
"""

import numpy as np

VOCAB = 256
RUN = 16  # windows per run
TEST_EVERY = 10  # every tenth run is test
DEFAULT_CONTEXT = 128

SPLIT_RULE = (
    "windows of context + 1 bytes every context bytes, in runs of 16 windows; "
    "every tenth run (9, 19, ...) is test"
)


class TooShort(ValueError):
    """Too little text for a train and a test run of windows."""


def windows(
    stream: bytes | np.ndarray, context: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, x_test, y_test) by the split rule: x uint8 [n, context], y int64 [n, context].
    `stream` may also be an array of token ids (a tokenised corpus): the same rule cuts it,
    a window holding `context` tokens, and x keeps the array's dtype."""
    data = np.frombuffer(stream, dtype=np.uint8) if isinstance(stream, bytes) else stream
    unit = "bytes" if isinstance(stream, bytes) else "tokens"
    count = (len(data) - 1) // context
    if count < 2 * RUN:
        raise TooShort(
            f"{len(data)} {unit} make {max(count, 0)} windows of {context} {unit}; "
            f"at least {2 * RUN} are needed (a train and a test run)"
        )
    starts = np.arange(count) * context
    all_windows = data[starts[:, None] + np.arange(context + 1)]
    test = (np.arange(count) // RUN) % TEST_EVERY == TEST_EVERY - 1
    if not test.any():  # a short corpus: its last run is the test split
        test[-RUN:] = True
    x, y = all_windows[:, :-1], all_windows[:, 1:].astype(np.int64)
    return x[~test], y[~test], x[test], y[test]
