"""Configs: frozen dataclasses whose fields pydantic checks when they are built.

Every hyperparameter lives in params.yaml, one section per stage, and each section becomes one or
two of these configs. The rule is the same for all of them:

- types are exact (pydantic's strict mode): `"false"` is not a bool, `1.5` not an int, `True`
  not a number; an int is accepted where a float is expected;
- numbers are finite (no NaN or infinity);
- the configs of params.yaml's sections have no defaults, so params.yaml is the only source of
  values: a missing key is an error, and so is an unknown one. Each names the key, the section
  and the valid keys. (A config with defaults, such as a gate rule, has optional keys.)

Ranges and rules between fields are each config's `__post_init__`, which runs after the type
checks. pydantic is already in the environment (DVC depends on it) and does the type checks
better than hand-written ones: it collects every wrong field of a section in one message.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Collection, Iterator, Mapping
from typing import Annotated, Any, TypeVar

import pydantic
import pydantic.dataclasses

T = TypeVar("T")

# Field types with their range, for the common cases.
AtLeastOne = Annotated[int, pydantic.Field(ge=1)]
NonNegativeInt = Annotated[int, pydantic.Field(ge=0)]
Positive = Annotated[float, pydantic.Field(gt=0)]
NonNegative = Annotated[float, pydantic.Field(ge=0)]
Probability = Annotated[float, pydantic.Field(ge=0, lt=1)]  # dropout, Adam's beta1

_STRICT = pydantic.ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


def config(cls: type[T]) -> type[T]:
    """Decorator: `cls` as a frozen dataclass with strictly checked fields (module docstring)."""
    return pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)(cls)


class ConfigError(ValueError):
    """A section of parameters (or a config stored in a checkpoint) is missing, unknown or wrong."""


def field_names(cls: type) -> list[str]:
    """The keys a config class takes, in declaration order."""
    return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]


def build(
    cls: type[T],
    values: Mapping[str, Any],
    where: str,
    supplied: Mapping[str, Any] | None = None,
    shared_with: Collection[type] = (),
) -> T:
    """Build `cls` from the section `where` (named in every error), refusing bad keys and values.

    Args:
        values: the section as read (lists become tuples where the field is a tuple).
        supplied: values the caller adds that are not params (e.g. the image size of the data).
        shared_with: other config classes that read the same section: their keys are valid
            here, and only this class's keys are taken.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(values).__name__}")
    supplied = dict(supplied or {})
    own = field_names(cls)
    readable = [name for name in own if name not in supplied]
    valid = sorted(set(readable).union(*(field_names(other) for other in shared_with)))
    unknown = sorted(map(str, set(values) - set(valid)))
    missing = [name for name in readable if name not in values and _required(cls, name)]
    if unknown or missing:
        problems = [f"unknown key(s) {unknown}"] * bool(unknown)
        problems += [f"missing key(s) {missing}"] * bool(missing)
        raise ConfigError(f"{where}: {'; '.join(problems)}; valid keys: {valid}")
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _tuples(hints[name], value)
        for name, value in {**values, **supplied}.items()
        if name in own
    }
    try:
        return cls(**kwargs)
    except pydantic.ValidationError as error:
        raise ConfigError(f"{where}: {_describe(error)}") from None
    except ValueError as error:  # a range or a rule between fields (`__post_init__`)
        raise ConfigError(f"{where}: {error}") from None


def flatten(tree: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
    """Nested mappings → one level with `sep`-joined keys (`train.lambda_max`; "/" is DVC's own
    metric naming): the top-level values first, then each nested mapping's leaves in order; empty
    mappings vanish."""

    def leaves(node: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
        for key, value in node.items():
            if isinstance(value, Mapping):
                yield from leaves(value, f"{prefix}{key}{sep}")
            else:
                yield f"{prefix}{key}", value

    top = {key: value for key, value in tree.items() if not isinstance(value, Mapping)}
    nested = {key: value for key, value in tree.items() if isinstance(value, Mapping)}
    return top | dict(leaves(nested, ""))


def to_dict(config: Any) -> dict[str, Any]:
    """A config as plain values, e.g. to store in a checkpoint (`build` reads it back)."""
    return dataclasses.asdict(config)


def _required(cls: type, name: str) -> bool:
    field = next(f for f in dataclasses.fields(cls) if f.name == name)  # type: ignore[arg-type]
    no_default = dataclasses.MISSING
    return field.default is no_default and field.default_factory is no_default


def _tuples(hint: Any, value: Any) -> Any:
    """YAML has lists, configs hold tuples (hashable, comparable): convert for tuple fields."""
    if isinstance(value, list) and _is_tuple(hint):
        return tuple(value)
    return value


def _is_tuple(hint: Any) -> bool:
    if typing.get_origin(hint) in (typing.Union, typing.get_origin(int | None)):
        return any(_is_tuple(arg) for arg in typing.get_args(hint))
    return hint is tuple or typing.get_origin(hint) is tuple


def _describe(error: pydantic.ValidationError) -> str:
    """pydantic's errors as one line: `key: message (got value)` for each wrong key, then the
    message of a broken rule between fields."""
    parts = []
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"])
        message = item["msg"]
        if item["type"] == "value_error":  # our own check: its message, without pydantic's prefix
            message = str(item["ctx"]["error"])
        if key:
            parts.append(f"{key}: {message} (got {item['input']!r})")
        else:  # a rule between fields (`__post_init__`): the message names the values
            parts.append(message)
    return "; ".join(parts)
