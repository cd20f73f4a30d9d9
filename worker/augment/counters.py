"""Random numbers from counters: the same (seed, epoch, position, draw) always gives the same
number, on any device, in any batch, with no generator state to checkpoint. That is what lets
the student replay exactly the augmented view the teacher labelled (TinyViT's trick), and a
resumed job draw the views it would have drawn.

splitmix64's finaliser over a mix of the counters, in numpy uint64 (wrapping arithmetic is
defined there, unlike torch's signed int64)."""

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_KEYS = (
    np.uint64(0xD1B54A32D192ED03),
    np.uint64(0xABC98388FB8FAC03),
    np.uint64(0x8CB92BA72F3D8DD7),
)


def _mix(z: np.ndarray) -> np.ndarray:
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def bits(seed: int, epoch: int, counters: np.ndarray, draw: int) -> np.ndarray:
    """64 random bits per counter (uint64, the counters' shape)."""
    with np.errstate(over="ignore"):
        start = np.uint64(seed) * _KEYS[0] + np.uint64(epoch) * _KEYS[1] + np.uint64(draw)
        base = _mix(np.asarray(start, dtype=np.uint64))
        return _mix(counters.astype(np.uint64) * _KEYS[2] + base)


def uniform(seed: int, epoch: int, counters: np.ndarray, draw: int) -> np.ndarray:
    """Uniform float64 in [0, 1) per counter."""
    return (bits(seed, epoch, counters, draw) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def integers(seed: int, epoch: int, counters: np.ndarray, draw: int, high: int) -> np.ndarray:
    """Uniform integers in [0, high) per counter."""
    return np.minimum((uniform(seed, epoch, counters, draw) * high).astype(np.int64), high - 1)


def normal(seed: int, epoch: int, counters: np.ndarray, draw: int) -> np.ndarray:
    """Standard normal float64 per counter (Box-Muller over two independent uniforms)."""
    u1 = 1.0 - uniform(seed, epoch, counters, 2 * draw)  # (0, 1]: log is finite
    u2 = uniform(seed, epoch, counters, 2 * draw + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
