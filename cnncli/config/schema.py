"""The run config as typed data: one pydantic model per section, layer specs included.

A file has six sections: `model` (required), `loss`, `optimizer`, `schedule`, `train` and
`data`. Unknown keys are errors, so a typo never passes silently. The layer, optimizer and
schedule variants come from their registries (each type defines its Spec beside its class),
so the JSON schema (`config_schema()`) types every field of every variant exactly.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Field, model_validator

from cnncli.data.augment import AugmentSpec
from cnncli.layers import AnyLayerSpec
from cnncli.layers.losses import LOSSES
from cnncli.optim import OPTIMIZERS, SCHEDULES, AdamSpec, ConstantSpec
from cnncli.spec import NonNegativeInt, PositiveInt, Real, Spec, one_of

#: the classes of MNIST; a model must end with this many outputs
NUM_CLASSES = 10
#: the shape of one MNIST image, (C, H, W)
MNIST_SHAPE = (1, 28, 28)


def _union(specs: list[Any]) -> Any:
    """A discriminated union (on `type`) of the given Spec classes."""
    return Annotated[Union[tuple(specs)], Field(discriminator="type")]  # noqa: UP007


OptimizerSection = _union([cls.Spec for _, cls in OPTIMIZERS.items()])
ScheduleSection = _union([cls.Spec for _, cls in SCHEDULES.items()])
LossName = Literal[tuple(LOSSES.names())]  # type: ignore[valid-type]


class ModelSpec(Spec):
    """The network: input shape (C, H, W) and the layer list."""

    input_shape: one_of(tuple[PositiveInt, PositiveInt, PositiveInt],  # type: ignore[valid-type]
                        "[channels, height, width] of positive integers") = Field(
        MNIST_SHAPE, description="[channels, height, width] of one input image; [1, 28, 28] "
        "for MNIST")
    layers: Annotated[list[AnyLayerSpec], Field(min_length=1)] = Field(
        description="layer specs in order, e.g. {type: conv, filters: 6, kernel: 5}")


class TrainConfig(Spec):
    """The training loop."""

    epochs: PositiveInt = Field(10, description="passes over the training images")
    batch_size: PositiveInt = Field(64, description="images per step")
    eval_batch_size: PositiveInt = Field(500, description="images per forward pass when "
                                         "evaluating")
    seed: NonNegativeInt = Field(0, description="seeds weights, shuffling and dropout")
    val_split: Real = Field(
        0.1, ge=0, lt=1,
        description="fraction of the training file held out for validation: a fixed "
        "selection (the same for every seed, see cnncli.data.split.split_indices); 0 = none")
    shards: Annotated[PositiveInt, Field(le=64)] = Field(
        1, description="pieces each batch is cut into, run in parallel on the workers (see "
        "--threads) with their gradients summed in order: part of the arithmetic, so a config "
        "gives the same bits on 1 or 2 cores; 2 uses both cores of a 2-core machine")
    limit: PositiveInt | None = Field(
        None, description="train on only the first N training images (quick runs)")
    target_accuracy: Real | None = Field(
        None, gt=0, le=1, description="stop once validation accuracy reaches this fraction")
    patience: PositiveInt | None = Field(
        None, description="stop after this many epochs without a better validation accuracy")

    @model_validator(mode="after")
    def _stopping_needs_validation(self) -> TrainConfig:
        for name in ("target_accuracy", "patience"):
            if getattr(self, name) is not None and self.val_split == 0:
                raise ValueError(f"{name}: needs a validation split, received val_split 0")
        return self


DatasetName = Literal["mnist", "fashion-mnist", "idx"]
#: the datasets cnncli fetches by name, with their classes and image shape
REGISTERED = {"mnist": 10, "fashion-mnist": 10}


def _mirror(v: str) -> str:
    """A mirror's form is checked here (nothing is fetched); the error is located by pydantic."""
    from cnncli.data.mirrors import parse_mirror
    from cnncli.errors import ConfigError

    try:
        parse_mirror(v, "@")
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix("@: ")) from None
    return v


class DataConfig(Spec):
    """Where the images come from."""

    dataset: DatasetName = Field(
        "mnist",
        description="mnist or fashion-mnist: fetched from the mirrors and verified against "
        "pinned SHA-256 sums; idx: your own folder (data_dir or --data-dir) holding the four "
        "MNIST-named IDX files, raw or .gz, greyscale images of any size, checked "
        "structurally (there are no published hashes to verify)")
    data_dir: str | None = Field(
        None, description="folder holding the dataset files (default for mnist and "
        "fashion-mnist: cnncli's data folder; required for idx unless --data-dir is given)")
    mirrors: list[Annotated[str, AfterValidator(_mirror)]] = Field(
        default_factory=list,
        description="URLs or local folders to fetch the files from, tried before the defaults")
    augment: AugmentSpec | None = Field(
        None, description="random translation, rotation, scaling and elastic distortion of "
        "training images (never validation or test), e.g. {translate: 2, rotate: 10}")
    classes: Annotated[list[str], Field(min_length=2, max_length=1000)] | None = Field(
        None, description="idx only: the class names, in label order (default: '0', '1', ... "
        "up to the largest label)")

    @model_validator(mode="after")
    def _classes_are_for_idx(self) -> DataConfig:
        if self.classes is not None:
            if self.dataset != "idx":
                raise ValueError(f"classes: only an idx dataset takes class names; "
                                 f"{self.dataset}'s are fixed")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError(f"classes: names must differ, received {self.classes[:6]}")
        return self

    def num_classes(self) -> int | None:
        """How many classes the data has, when the config alone says (None: from the labels)."""
        if self.dataset in REGISTERED:
            return REGISTERED[self.dataset]
        return len(self.classes) if self.classes is not None else None


class RunConfig(Spec):
    """A whole run: model, loss, optimizer, schedule, training loop and data."""

    model: ModelSpec
    loss: LossName = Field("softmax_cross_entropy",  # type: ignore[valid-type]
                           description=" or ".join(LOSSES.names()))
    optimizer: OptimizerSection = Field(default_factory=lambda: AdamSpec(type="adam"))
    schedule: ScheduleSection = Field(default_factory=lambda: ConstantSpec(type="constant"))
    train: TrainConfig = Field(default_factory=TrainConfig)
    data: DataConfig = Field(default_factory=DataConfig)


def config_schema() -> dict[str, Any]:
    """The JSON schema of a config file: every layer, optimizer and schedule typed exactly."""
    schema = RunConfig.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "cnncli run config", **{k: v for k, v in schema.items() if k != "title"}}
