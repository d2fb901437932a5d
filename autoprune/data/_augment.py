"""Training-time augmentation of image batches: random horizontal flips and random shifts.

Applied per mini-batch while training (dense training, trial fine-tunes, finalize); validation and
test inputs are never augmented. A shift pads each image by ``shift`` pixels, repeating its border
(the background, for centred images such as Fashion-MNIST's), and crops it back at a random offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Augment"]


@dataclass(frozen=True)
class Augment:
    """``hflip``: mirror half the images left-right; ``shift``: translate by up to this many pixels."""

    hflip: bool = False
    shift: int = 0

    @property
    def active(self) -> bool:
        return self.hflip or self.shift > 0

    @property
    def views(self) -> int | None:
        """How many versions of an image this makes when they are few (1 unaugmented, 2 with flips
        only), so that whatever depends on the input alone can be computed once for each; None with
        shifts."""
        if self.shift > 0:
            return None
        return 2 if self.hflip else 1

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A new batch ``x`` (N, C, H, W) with each image flipped and shifted independently."""
        return self.sample(x, generator)[0]

    def sample(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The augmented batch (``x`` itself when inactive) and which of its images were flipped
        (a boolean mask; None without ``hflip``)."""
        flip = None
        if self.hflip:
            flip = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.shift > 0:
            x = self._shift(x, generator)
        return x, flip

    def _shift(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        count, _, height, width = x.shape
        s = self.shift
        padded = torch.nn.functional.pad(x, (s, s, s, s), mode="replicate")
        dy = torch.randint(0, 2 * s + 1, (count,), generator=generator)
        dx = torch.randint(0, 2 * s + 1, (count,), generator=generator)
        rows = (dy[:, None] + torch.arange(height))[:, :, None]  # (N, H, 1)
        cols = (dx[:, None] + torch.arange(width))[:, None, :]  # (N, 1, W)
        batch = torch.arange(count)[:, None, None]
        return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()
