"""The building blocks of every spec a config holds: strict field types, the Spec base model,
and validation that turns pydantic's errors into one located ConfigError.

Field types accept exactly what the JSON schema (`cnncli config schema`) accepts:

    Int       an integer (a float with no fraction, such as 6.0, counts, as in JSON schema);
              never a bool or text; at most MAX_INT
    Real      a finite number (int or float); never a bool or text
    Pair      a positive Int or a [height, width] list of them -> (h, w)

    spec = check(ConvSpec, {"type": "conv", "filters": 6, "kernel": 5})
    check(ConvSpec, {"type": "conv", "filters": "six", "kernel": 5})
    # ConfigError: filters: must be an integer, received 'six'
"""

from __future__ import annotations

import re
import types
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from cnncli.errors import ConfigError, Loc, format_path, quote

#: the largest integer any config field takes (sizes, counts, seeds): a C int32
MAX_INT = 2**31 - 1


def _whole_number(v: Any) -> Any:
    """6.0 -> 6 (JSON schema calls a float without a fraction an integer); anything else as is."""
    if isinstance(v, float) and v.is_integer() and abs(v) <= MAX_INT:
        return int(v)
    return v


def integer(ge: int | None = None, le: int = MAX_INT) -> Any:
    """An Int in [ge, le]. (The bounds must come before the validator in the Annotated, or
    pydantic leaves them out of the JSON schema.)"""
    return Annotated[int, Field(strict=True, ge=ge, le=le), BeforeValidator(_whole_number)]


Int = integer()
PositiveInt = integer(ge=1)
NonNegativeInt = integer(ge=0)
Real = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def as_pair(v: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    """An int or [h, w] (already validated) -> (h, w)."""
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


def one_of(tp: Any, expected: str) -> Any:
    """tp (a union) whose failure is one error, 'must be <expected>, received <value>', rather
    than one error per member of the union."""
    def wrap(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError(
                "one_of", "must be {expected}, received {received}",
                {"expected": expected, "received": quote(value)}) from None

    return Annotated[tp, WrapValidator(wrap)]


def pair_of(item: Any, what: str) -> Any:
    """The type `item | [item, item]`, validated to an (h, w) tuple and dumped as [h, w]."""
    return Annotated[
        one_of(item | Annotated[list[item], Field(min_length=2, max_length=2)],
               f"{what} or a [height, width] pair of them"),
        AfterValidator(as_pair),
        PlainSerializer(list, return_type=list[int]),
    ]


Pair = pair_of(PositiveInt, "a positive integer")


class Spec(BaseModel):
    """Base of every config model: unknown keys are errors, instances are immutable.

    Specs told apart by a `type` tag say what their tag names in `tag_kind` (e.g. 'layer
    type', 'optimizer'), for 'unknown optimizer 'x' (known: ...)' messages.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    tag_kind: ClassVar[str] = "type"


M = TypeVar("M")


def check(model: Any, data: Any, *, loc: Loc = (), source: str | None = None) -> Any:
    """Validate `data` as `model` (a Spec class or any type pydantic takes) -> the instance.

    Failures become one ConfigError whose `loc` is the path of the first bad value (after
    `loc`), with the type tag of the layer it sits in as `kind`.
    """
    adapter = model if isinstance(model, TypeAdapter) else (
        None if isinstance(model, type) and issubclass(model, BaseModel) else TypeAdapter(model))
    try:
        if adapter is None:
            return model.model_validate(data)
        return adapter.validate_python(data)
    except ValidationError as exc:
        root = model if adapter is None else getattr(adapter, "_type", model)
        raise describe(exc, root, data, loc=loc, source=source) from None


def describe(exc: ValidationError, root: Any, data: Any, *, loc: Loc = (),
             source: str | None = None) -> ConfigError:
    """The first error of a pydantic ValidationError as one located ConfigError."""
    errors = exc.errors()
    err = errors[0]
    raw_loc = tuple(err["loc"])
    path, kind, kind_depth, tagged, parent = _walk(root, raw_loc)
    message = _explain(err, path, tagged, parent, data)
    if message.startswith("type: "):  # names its own key
        path, message = (*path, "type"), message[len("type: "):]
    named = re.match(r"([A-Za-z_]\w*): ", message)
    if err["type"] == "value_error" and named:  # 'nesterov: needs momentum > 0'
        path, message = (*path, named.group(1)), message[named.end():]
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return ConfigError(message, loc=(*loc, *path), source=source, kind=kind,
                       kind_depth=len(loc) + kind_depth if kind else None)


# -- walking a model's types along an error location -------------------------------------------


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] wrappers."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _members(tp: Any) -> list[Any]:
    """The members of a Union (X | Y) with Annotated stripped, else [tp]."""
    tp = _unwrap(tp)
    if get_origin(tp) in (Union, types.UnionType):
        return [_unwrap(a) for a in get_args(tp)]
    return [tp]


def _tag_of(model: Any) -> str | None:
    """The Literal value of a model's `type` field, e.g. 'conv'."""
    if isinstance(model, type) and issubclass(model, BaseModel) and "type" in model.model_fields:
        args = get_args(_unwrap(model.model_fields["type"].annotation))
        if get_origin(_unwrap(model.model_fields["type"].annotation)) is Literal and args:
            return str(args[0])
    return None


def tagged_members(tp: Any) -> dict[str, Any]:
    """tag -> model for a discriminated union of tagged models (empty if tp is not one)."""
    out = {}
    for m in _members(tp):
        tag = _tag_of(m)
        if tag is not None:
            out[tag] = m
    return out if len(out) == len(_members(tp)) else {}


def _walk(root: Any, raw: Loc) -> tuple[Loc, str | None, int, dict[str, Any], Any]:
    """Follow pydantic's location through the types -> (clean path, kind, depth of kind,
    the tagged union at the end of the path if there is one, the type holding the last key).

    Pydantic puts a union member's tag into the location ('layers', 3, 'conv', 'kernel'); the
    clean path drops it ('layers', 3, 'kernel'), and a tag that follows a list index becomes
    the error's kind ('conv', annotating 'layers[3]').
    """
    tp: Any = root
    parent: Any = root
    path: list[int | str] = []
    kind, depth = None, 0
    parts = list(raw)
    while parts:
        tagged = tagged_members(tp)
        if tagged and isinstance(parts[0], str) and parts[0] in tagged:
            tag = parts.pop(0)
            if not path or isinstance(path[-1], int):  # a list item (or the root) of a type
                kind, depth = str(tag), len(path)
            tp = tagged[str(tag)]
            continue
        part = parts.pop(0)
        path.append(part)
        parent, tp = tp, _step(tp, part)
    return tuple(path), kind, depth, tagged_members(tp), parent


def _step(tp: Any, part: int | str) -> Any:
    """The type found one step into tp along `part` (a field name or a list index)."""
    for m in _members(tp):
        if isinstance(part, int) and get_origin(m) in (list, tuple):
            args = get_args(m)
            return args[0] if args else Any
        if isinstance(part, str) and isinstance(m, type) and issubclass(m, BaseModel):
            field = m.model_fields.get(part)
            if field is not None:
                return field.annotation
    return Any


def _value_at(data: Any, path: Loc) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def known_keys(model: Any) -> list[str]:
    """The keys a mapping validated as `model` may hold."""
    for m in _members(model):
        if isinstance(m, type) and issubclass(m, BaseModel):
            return list(m.model_fields)
    return []


def _variants(model: Any) -> dict[str, Any]:
    """The other Spec classes with the same tag_kind as `model` (e.g. every optimizer)."""
    if not (isinstance(model, type) and issubclass(model, Spec)) or _tag_of(model) is None:
        return {}
    out: dict[str, Any] = {}
    stack = list(Spec.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        tag = _tag_of(cls)
        if tag is not None and cls.tag_kind == model.tag_kind:
            out[tag] = cls
    return out


def _other_variant_hint(path: Loc, parent: Any, value: Any) -> str:
    """'; momentum is a setting of sgd: switch with --set 'optimizer={type: sgd, ...}''."""
    if not path:
        return ""
    key = path[-1]
    others = [tag for tag, cls in sorted(_variants(parent).items())
              if key in cls.model_fields and tag != _tag_of(parent)]
    if not others:
        return ""
    where = format_path(path[:-1])
    return (f"; {key} is a setting of {' and '.join(others)}, not {_tag_of(parent)}: switch "
            f"with --set '{where}={{type: {others[0]}, {key}: {quote(value)}}}'")


_BOUNDS = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
           "less_than": ("<", "lt"), "less_than_equal": ("<=", "le")}


def explain_common(err: dict[str, Any]) -> str | None:
    """The one-line explanation of a pydantic error of a kind every cnncli schema words alike
    (bounds, missing, value and number errors, not a mapping); None for any other kind."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind in _BOUNDS:
        sign, key = _BOUNDS[kind]
        return f"must be {sign} {ctx[key]:g}, received {quote(value)}"
    if kind == "missing":
        return "is required"
    if kind == "finite_number":
        return f"must be a finite number, received {quote(value)}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in ("float_type", "float_parsing"):
        return f"must be a number, received {quote(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer, received {quote(value)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping, received {quote(value)}"
    return None


def _explain(err: dict[str, Any], path: Loc, tagged: dict[str, Any], parent: Any,
             data: Any) -> str:
    common = explain_common(err)
    if common is not None:
        return common
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "extra_forbidden":
        known = known_keys(parent)
        return "unknown key" + (f" (known: {', '.join(known)})" if known else "") + \
            _other_variant_hint(path, parent, value)
    if kind == "union_tag_invalid":
        tag = _value_at(data, path)
        tag = tag.get("type") if isinstance(tag, dict) else ctx.get("tag")
        what = next(iter(tagged.values())).tag_kind if tagged else "type"
        return f"type: unknown {what} {quote(tag)} (known: {', '.join(sorted(tagged))})"
    if kind == "one_of":
        return str(err["msg"])
    if kind == "union_tag_not_found":
        return f"type: is required (one of {', '.join(sorted(tagged))})"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', '')}, received {quote(value)}"
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length", ctx.get("max_length"))
        return (f"must have {'at least' if kind == 'too_short' else 'at most'} {n} "
                f"item{'s' if n != 1 else ''}, received {quote(value)}")
    msg = str(err["msg"])
    msg = re.sub(r"^Input should be ", "must be ", msg)
    msg = msg.replace("a valid integer", "an integer").replace("a valid boolean", "true or false")
    msg = msg.replace("a valid string", "text").replace("a valid list", "a list")
    return f"{msg}, received {quote(value)}"
