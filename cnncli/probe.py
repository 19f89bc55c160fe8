"""What a network computes for one image, layer by layer, named (for the feature-map picture).

    maps = layer_outputs(net, image, mean=arrays.mean, std=arrays.std)
    plot_feature_maps(image, maps, path)    # [("layers.0 conv", (6, 28, 28)), ...] drawn as is

The image is normalised exactly as training and evaluation batches are (data.batches.to_batch
with the dataset's mean and std) and carried through Network.activations (inference mode,
dropout off), so the maps are the network's real activations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnncli.data.batches import MEAN, STD, to_batch
from cnncli.errors import DataError


def layer_outputs(net: Any, image: np.ndarray, mean: float = MEAN, std: float = STD
                  ) -> list[tuple[str, np.ndarray]]:
    """image: uint8 (H, W) or (C, H, W) -> [(name, output)] for every layer of `net`.

    Each output is one layer's activation for this image with the batch axis dropped:
    (C, H, W) for image-shaped layers, (D,) for flat ones; the last is the network's output
    (K,). Names are 'layers.<i> <type>', as in the parameter names (layers.<i>.weight).
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise DataError(f"layer_outputs: expected a uint8 (H, W) or (C, H, W) image, received "
                        f"{img.dtype} {img.shape}")
    x = to_batch(img[None], mean=mean, std=std)              # (1, [C,] H, W) -> (C, H, W, 1)
    if x.shape[:-1] != tuple(net.input_shape):
        raise DataError(f"layer_outputs: the image is {x.shape[:-1]} (C, H, W), the network "
                        f"takes {tuple(net.input_shape)}")
    return [(f"layers.{i} {layer.type_name}", out[..., 0].copy())   # drop the batch axis
            for i, (layer, out) in enumerate(zip(net.layers, net.activations(x), strict=True))]
