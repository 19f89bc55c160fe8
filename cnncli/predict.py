"""Predicting on a user's own images: a photo or scan of a digit, an array, an IDX file, or a
folder of them.

    preds = predict_images("runs/x", ["seven.png", "digits/"], top_k=3)
    preds[0].top          # [(7, '7', 0.998), (1, '1', 0.001), (2, '2', 0.0004)]
    preds[0].error        # None, or one line saying what is wrong with that input

Each image is turned into what the network expects the way MNIST itself was made
(cnncli.images.prepare_digit) unless `raw` says it already is; the checkpoint's own
normalisation and class names are used. A bad input is reported and the rest still predicted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnncli.data.batches import to_batch
from cnncli.errors import ConfigError, DataError
from cnncli.layers.losses import build_loss
from cnncli.visualize import RunView, open_run

#: images predicted in one forward pass
BATCH = 256


@dataclass
class Prediction:
    """One input's result: the top-k (class index, name, probability), or an error line."""

    label: str
    top: list[tuple[int, str, float]] = field(default_factory=list)
    image: np.ndarray | None = None  # uint8 (H, W): what the network saw
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"input": self.label, "error": self.error,
                "top": [{"class": k, "name": n, "probability": p} for k, n, p in self.top]}


def predict_images(checkpoint: str | Path, paths: Iterable[str | Path], *, raw: bool = False,
                   top_k: int = 3, view: RunView | None = None) -> list[Prediction]:
    """Every image under `paths`, predicted by the checkpoint (a file or a run folder)."""
    from cnncli.images import prepare_digit, read_image_inputs

    view = view or open_run(checkpoint)
    c, h, w = view.cfg.run.model.input_shape
    if c != 1:
        raise ConfigError(f"{view.checkpoint_path}: the model takes {c} channels; predict reads "
                          "greyscale images only")
    if not 1 <= top_k:
        raise ConfigError(f"--top-k must be at least 1, received {top_k}")
    out: list[Prediction] = []
    for item in read_image_inputs(paths):
        if item.error is not None or item.image is None:
            out.append(Prediction(item.label, error=item.error or f"{item.label}: no image"))
            continue
        try:
            out.append(Prediction(item.label, image=prepare_digit(item.image, (h, w), raw=raw)))
        except DataError as exc:
            message = str(exc)
            out.append(Prediction(item.label, error=message if message.startswith(item.label)
                                  else f"{item.label}: {message}"))
    good = [p for p in out if p.image is not None]
    loss = build_loss(view.cfg.run.loss)
    k = min(top_k, len(view.classes))
    for start in range(0, len(good), BATCH):
        part = good[start:start + BATCH]
        x = to_batch(np.stack([p.image for p in part]), mean=view.ckpt.mean, std=view.ckpt.std)
        probs = loss.probabilities(view.net.forward(x))  # (K, B)
        order = np.argsort(-probs, axis=0, kind="stable")[:k]  # (k, B)
        for j, p in enumerate(part):
            p.top = [(int(c), view.classes[int(c)], float(probs[c, j])) for c in order[:, j]]
    return out
