"""`image`: random crop of the zero-padded image and a horizontal flip (the CIFAR recipe), and
optionally mixup (Zhang et al. 2018) or cutmix (Yun et al. 2019) with the next example of the
epoch: lam ~ Beta(alpha, alpha) drawn by inverting the Beta CDF at a counter's uniform."""

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import betaincinv

from worker.augment.counters import integers, uniform
from worker.augment.registry import AUGMENTATIONS, Augmentation, ViewKey

CROP_X, CROP_Y, FLIP, MIX_KIND, LAM, BOX_X, BOX_Y = range(7)  # the draws


@AUGMENTATIONS.register("image")
class ImageAugmentation(Augmentation):
    def check(self) -> None:
        if len(self.input_shape) not in (2, 3):
            raise self.refuse(
                f"'image' augmentation needs (height, width) or (channels, height, width) "
                f"inputs; these are {self.input_shape}"
            )

    def __call__(self, x: torch.Tensor, key: ViewKey) -> torch.Tensor:
        flat = x.dim() == 3  # (batch, height, width)
        if flat:
            x = x.unsqueeze(1)
        batch, _, height, width = x.shape
        counters = key.counters()
        pad = self.spec["crop_padding"]
        if pad:
            padded = F.pad(x, (pad, pad, pad, pad))
            span = 2 * pad + 1
            dx = torch.from_numpy(integers(key.seed, key.epoch, counters, CROP_X, span))
            dy = torch.from_numpy(integers(key.seed, key.epoch, counters, CROP_Y, span))
            rows = (dy[:, None] + torch.arange(height)).to(x.device)  # (batch, height)
            cols = (dx[:, None] + torch.arange(width)).to(x.device)  # (batch, width)
            b = torch.arange(batch, device=x.device)[:, None, None]
            # (batch, height, width, channels) -> (batch, channels, height, width)
            x = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]
            x = x.permute(0, 3, 1, 2).contiguous()
        if self.spec["flip"]:
            flip = torch.from_numpy(uniform(key.seed, key.epoch, counters, FLIP) < 0.5)
            x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
        return x.squeeze(1) if flat else x

    def mixes(self) -> bool:
        return bool(self.spec.get("mixup") or self.spec.get("cutmix"))

    def mix(
        self, views: torch.Tensor, partner_views: torch.Tensor, key: ViewKey
    ) -> tuple[torch.Tensor, torch.Tensor]:
        seed, epoch, counters = key.seed, key.epoch, key.counters()
        mixup, cutmix = self.spec.get("mixup", 0.0), self.spec.get("cutmix", 0.0)
        if mixup and cutmix:
            cut = uniform(seed, epoch, counters, MIX_KIND) < 0.5
        else:
            cut = np.full(len(counters), bool(cutmix))
        alpha = np.where(cut, cutmix, mixup)
        lam = betaincinv(alpha, alpha, uniform(seed, epoch, counters, LAM))
        height, width = views.shape[-2:]
        # cutmix: a box of area (1 - lam) centred anywhere, clipped to the image; the share of
        # the view's own example is what the box leaves.
        cut_h = (height * np.sqrt(1 - lam)).astype(np.int64)
        cut_w = (width * np.sqrt(1 - lam)).astype(np.int64)
        cy = integers(seed, epoch, counters, BOX_Y, height)
        cx = integers(seed, epoch, counters, BOX_X, width)
        y1, y2 = np.clip(cy - cut_h // 2, 0, height), np.clip(cy + cut_h // 2, 0, height)
        x1, x2 = np.clip(cx - cut_w // 2, 0, width), np.clip(cx + cut_w // 2, 0, width)
        box_lam = 1 - (y2 - y1) * (x2 - x1) / (height * width)
        lam = np.where(cut, box_lam, lam)

        device = views.device
        rows = torch.arange(height, device=device)[None, :, None]
        cols = torch.arange(width, device=device)[None, None, :]

        def per_view(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(device)[:, None, None]

        in_box = (
            (rows >= per_view(y1))
            & (rows < per_view(y2))
            & (cols >= per_view(x1))
            & (cols < per_view(x2))
            & per_view(cut)
        )
        if views.dim() == 4:
            in_box = in_box[:, None]
        share = torch.from_numpy(lam).to(device, views.dtype)
        shape = (-1,) + (1,) * (views.dim() - 1)
        blended = share.view(shape) * views + (1 - share.view(shape)) * partner_views
        cut_views = torch.where(in_box, partner_views, views)
        mixed = torch.where(per_view(cut).view(shape), cut_views, blended)
        return mixed, share
