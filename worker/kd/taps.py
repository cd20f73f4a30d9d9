"""Forward hooks that keep the outputs of a model's named layers for a distillation method."""

from collections.abc import Callable
from types import TracebackType

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from worker.models import feature_modules


class FeatureTaps:
    """While open, every forward of `model` leaves the outputs of the layers `names` (the
    catalog's layer names) in `take()`. Closing removes the hooks, so the model that is then
    exported is exactly the one that was built: no hook, no extra output, no extra cost."""

    def __init__(self, model: nn.Module | None, names: list[str]) -> None:
        self._features: dict[str, torch.Tensor] = {}
        self._handles: list[RemovableHandle] = []
        if model is None or not names:
            return
        modules = feature_modules(model)
        for name in names:
            if name not in modules:
                known = ", ".join(modules) or "none"
                raise KeyError(f"the model has no layer {name!r}; its layers: {known}")
            self._handles.append(modules[name].register_forward_hook(self._keeper(name)))

    def _keeper(self, name: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def keep(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            self._features[name] = output

        return keep

    def take(self) -> dict[str, torch.Tensor]:
        """The features of the last forward (and forget them: they hold the autograd graph)."""
        features, self._features = self._features, {}
        return features

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._features = {}

    def __enter__(self) -> "FeatureTaps":
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()
