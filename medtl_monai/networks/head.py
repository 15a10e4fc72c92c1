"""Classification head used on top of every (truncated) backbone."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Pool

__all__ = ["ClassificationHead"]


class ClassificationHead(nn.Module):
    """Global average pooling, optional dropout and a linear layer with Kaiming-normal initialisation, as in the
    TruncatedTL reference implementation.

    Args:
        in_features: channels of the feature map.
        num_classes: output logits.
        spatial_dims: 2 or 3.
        dropout: dropout probability before the linear layer (0 disables it).
    """

    def __init__(self, in_features: int, num_classes: int, spatial_dims: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes={num_classes!r} must be a positive integer.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout={dropout!r} must be in [0, 1).")
        self.pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](1)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)
        nn.init.kaiming_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.flatten(self.pool(x))))
