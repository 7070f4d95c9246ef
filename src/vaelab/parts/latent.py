"""The latent spec: how many continuous dimensions a model has and the sizes of its categorical codes.

Every consumer reads it (pictures, report, explorer, export, metrics, sklearn): a decoder input z is laid out
as [z_0 .. z_{D-1}, one-hot of code 0, one-hot of code 1, ...] (the JointVAE layout, Dupont 2018).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LatentSpec:
    continuous: int  # continuous dimensions, named z0, z1, ...
    discrete: tuple[int, ...] = ()  # categories of each categorical code, named c0, c1, ...

    @property
    def code_size(self) -> int:
        """Width of a decoder input: the continuous dimensions plus a one-hot block per categorical."""
        return self.continuous + sum(self.discrete)

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(continuous part (..., D), one block (..., K_i) per categorical) of decoder inputs z (..., code_size)."""
        blocks = z[..., self.continuous :].split(list(self.discrete), dim=-1) if self.discrete else []
        return z[..., : self.continuous], list(blocks)

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """The category of each categorical block of z (its argmax), (..., n_discrete) int64."""
        blocks = self.split(z)[1]
        return torch.stack([b.argmax(-1) for b in blocks], -1) if blocks else z.new_zeros(*z.shape[:-1], 0).long()

    def join(self, continuous: torch.Tensor, codes: torch.Tensor | list[int]) -> torch.Tensor:
        """Decoder inputs from continuous values (..., D) and category indices (..., n_discrete)."""
        codes = torch.as_tensor(codes, device=continuous.device).expand(*continuous.shape[:-1], len(self.discrete))
        one_hots = [F.one_hot(codes[..., i], k).to(continuous.dtype) for i, k in enumerate(self.discrete)]
        return torch.cat([continuous, *one_hots], dim=-1)

    def describe(self) -> str:
        """e.g. ``10 continuous + categorical 10 x 3``."""
        text = f"{self.continuous} continuous"
        return text + (" + categorical " + " x ".join(map(str, self.discrete)) if self.discrete else "")
