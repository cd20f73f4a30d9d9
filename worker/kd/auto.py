"""`distill.temperature: "auto"` and `kd_weight: "auto"`: which values the tune stage tries,
in what order, and which it keeps (pure: no training here).

A coordinate search: first the temperature (1, 2, 4, 8) at the spec's kd_weight (0.9 when
that is "auto" too), then the weight (0.5, 0.9, 1.0; `ce_weight` = 1 - kd_weight) at the best
temperature. Each candidate is a short distillation from the same initial student; it is
scored by its best validation value of the task's selection metric, and stopped early once,
from the second half of its epochs on (first epochs favour whatever learns fastest, not best),
it trails the best candidate so far at the same epoch by more than the margin. Ties go to the
earlier candidate.
"""

import math
from dataclasses import asdict, dataclass, field
from typing import Any

AUTO = "auto"
TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
KD_WEIGHTS = (0.5, 0.9, 1.0)
DEFAULT_TEMPERATURE = 4.0
DEFAULT_KD_WEIGHT = 0.9
# A candidate trails by more than this (accuracy points, or nats of loss) at an epoch: stopped.
MARGIN = 0.02
MAX_EPOCHS = 10


def is_auto(distill: dict[str, Any]) -> bool:
    return AUTO in (distill.get("temperature"), distill.get("kd_weight"))


def resolved(distill: dict[str, Any], tuned: dict[str, float] | None) -> dict[str, Any]:
    """The distill settings with "auto" replaced: by the tuned values once the search chose,
    else by the defaults (what builds a method before the search ran)."""
    out = dict(distill)
    chosen = tuned or {}
    if out.get("temperature") == AUTO:
        out["temperature"] = chosen.get("temperature", DEFAULT_TEMPERATURE)
    if out.get("kd_weight") == AUTO:
        weight = chosen.get("kd_weight", DEFAULT_KD_WEIGHT)
        out["kd_weight"], out["ce_weight"] = weight, round(1.0 - weight, 6)
    return out


def search_epochs(epochs: int) -> int:
    """Epochs of each candidate: a quarter of the distillation's, 1 to MAX_EPOCHS."""
    return max(1, min(MAX_EPOCHS, math.ceil(epochs / 4)))


def judged_from(epochs: int) -> int:
    """The first epoch of a candidate's `epochs` after which it may be stopped early."""
    return max(1, math.ceil(epochs / 2))


@dataclass
class Candidate:
    temperature: float
    kd_weight: float
    ce_weight: float
    scores: list[float] = field(default_factory=list)  # the selection metric after each epoch
    stopped_early: bool = False

    def best(self, higher_is_better: bool) -> float:
        return max(self.scores) if higher_is_better else min(self.scores)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Search:
    """The state of one search: the candidates tried so far (persisted as JSON between
    attempts of the job) and how to pick."""

    distill: dict[str, Any]
    higher_is_better: bool
    tried: list[Candidate] = field(default_factory=list)

    def _weights(self, kd_weight: float) -> tuple[float, float]:
        if self.distill.get("kd_weight") == AUTO:
            return kd_weight, round(1.0 - kd_weight, 6)
        return float(self.distill["kd_weight"]), float(self.distill["ce_weight"])

    def _temperatures(self) -> tuple[float, ...]:
        if self.distill.get("temperature") == AUTO:
            return TEMPERATURES
        return (float(self.distill["temperature"]),)

    def _first_weight(self) -> float:
        if self.distill.get("kd_weight") == AUTO:
            return DEFAULT_KD_WEIGHT
        return float(self.distill["kd_weight"])

    def _other_weights(self) -> list[float]:
        if self.distill.get("kd_weight") != AUTO:
            return []
        return [w for w in KD_WEIGHTS if w != DEFAULT_KD_WEIGHT]

    def size(self) -> int:
        """How many candidates the search tries."""
        return len(self._temperatures()) + len(self._other_weights())

    def next(self) -> tuple[float, float, float] | None:
        """The next (temperature, kd_weight, ce_weight) to try, or None: the temperatures
        first, then the other weights at the best temperature."""
        temperatures, done = self._temperatures(), len(self.tried)
        if done < len(temperatures):
            return (temperatures[done], *self._weights(self._first_weight()))
        others = self._other_weights()
        if done - len(temperatures) < len(others):
            weight = others[done - len(temperatures)]
            return (self.chosen().temperature, *self._weights(weight))
        return None

    def trails(self, epoch: int, score: float) -> bool:
        """Whether a candidate scoring `score` after `epoch` (1-based) trails the best tried
        candidate's score at that epoch by more than MARGIN."""
        at_epoch = [c.scores[epoch - 1] for c in self.tried if len(c.scores) >= epoch]
        if not at_epoch:
            return False
        if self.higher_is_better:
            return score < max(at_epoch) - MARGIN
        return score > min(at_epoch) + MARGIN

    def chosen(self) -> Candidate:
        best = self.tried[0]
        for candidate in self.tried[1:]:
            a, b = candidate.best(self.higher_is_better), best.best(self.higher_is_better)
            if (a > b) if self.higher_is_better else (a < b):
                best = candidate
        return best

    def as_json(self) -> dict[str, Any]:
        return {"tried": [c.as_json() for c in self.tried]}

    @classmethod
    def from_json(
        cls, distill: dict[str, Any], higher_is_better: bool, data: dict[str, Any]
    ) -> "Search":
        tried = [Candidate(**c) for c in data.get("tried", [])]
        return cls(distill, higher_is_better, tried)
