"""Options shared by several commands, declared once so every command spells them the same."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import click

F = Callable[..., Any]


def config_option(required: bool = True, help: str | None = None) -> Callable[[F], F]:
    """--config FILE|PRESET, which may also be given as the command's first argument."""
    text = help or "A YAML config file, or the name of a bundled preset such as 'lenet'."

    def decorate(f: F) -> F:
        f = click.option("--config", "config_spec", metavar="FILE|PRESET",
                         help=text + " May also be given as the first argument.")(f)
        f = click.argument("config_arg", required=False, metavar="[CONFIG]")(f)
        return _merge_config(f, required)

    return decorate


def _merge_config(f: F, required: bool) -> F:
    """Wrap a command so that it receives one `config_spec` from the argument or --config."""
    import functools

    @functools.wraps(f)
    def wrapper(*args: Any, config_arg: str | None = None, config_spec: str | None = None,
                **kwargs: Any) -> Any:
        if config_arg is not None and config_spec is not None and config_arg != config_spec:
            raise click.UsageError(f"two configs given: {config_arg!r} and --config "
                                   f"{config_spec!r}; give one")
        spec = config_arg if config_arg is not None else config_spec
        if spec is None and required:
            raise click.UsageError("a config is needed: give a file or preset, e.g. "
                                   "'lenet' or --config lenet (presets: cnncli config list)")
        return f(*args, config_spec=spec, **kwargs)

    return wrapper  # type: ignore[return-value]


def set_option(help: str | None = None) -> Callable[[F], F]:
    """--set KEY.PATH=VALUE, repeatable."""
    return click.option(
        "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
        help=help or "Override one config value (YAML-parsed), e.g. --set optimizer.lr=3e-4, "
                     "or a whole section: --set 'schedule={type: step, gamma: 0.5}'; "
                     "repeatable.")


def _data_root() -> str:
    from cnncli.paths import data_root  # standard library only: --help stays fast

    return str(data_root())


# no envvar= here: $CNNCLI_DATA_DIR is read by cnncli.paths.data_root, after a config's
# data.data_dir, so that the variable never overrides what a config file says
def data_dir_option_for(config: bool, checkpoint: bool = False) -> Callable[[F], F]:
    """--data-dir DIR, its help naming the real default folder (and the config's data_dir
    where the command reads a config, or an idx run's recorded folder for a checkpoint)."""
    from_config = ("the config's data.data_dir, else " if config else
                   "an idx run's recorded folder, else " if checkpoint else "")
    return click.option(
        "--data-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
        help="The dataset's folder (a registered dataset's cache, or your idx folder). "
             f"[default: {from_config}{_data_root()}/<dataset>; the root is $CNNCLI_DATA_DIR "
             "when set]")


data_dir_option = data_dir_option_for(config=True)
mirror_option = click.option(
    "--mirror", "mirrors", multiple=True, metavar="URL|DIR",
    help="A mirror to try first: http(s)://, file:// or a folder; repeatable "
         "(also $CNNCLI_MIRROR).")


def json_option(help: str = "Print one JSON object instead of a table.") -> Callable[[F], F]:
    """--json."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def batch_size_option(help: str, default: int | None = None,
                      show_default: bool = False) -> Callable[[F], F]:
    """--batch-size N (at least 1)."""
    return click.option("--batch-size", type=click.IntRange(min=1), default=default,
                        show_default=show_default, metavar="N", help=help)


def seed_option(help: str, default: int | None = 0) -> Callable[[F], F]:
    """--seed N (non-negative)."""
    return click.option("--seed", type=click.IntRange(min=0), default=default,
                        show_default=default is not None, metavar="N", help=help)


def quiet_option(help: str) -> Callable[[F], F]:
    """-q/--quiet."""
    return click.option("--quiet", "-q", is_flag=True, help=help)


def finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Callback: a float option must be finite (FloatRange lets NaN through)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number.", ctx=ctx, param=param)
    return value
