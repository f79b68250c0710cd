"""Recipe files: how a model is trained, as one frozen config read from a TOML file.

    affect-train --config training/recipes/default.toml --out runs/v7 --set data.root=PATH

A recipe names the network (``preset`` plus ``[network]`` overrides of training/network.py's
NetworkConfig), the data (``[data]``) and each stage's optimisation. The network decides the
trainer: an experts network (training/experts.py) trains by training/train_experts.py, any
other end to end by training/train.py; each trainer module names its schema (``RECIPE``).
``--set key=value`` overrides one dotted key. The config is saved whole in every checkpoint
(``recipe``), so ``recipe_of(checkpoint)`` says how it was made.

The schema is frozen dataclasses, filled from the TOML tables by dacite (a small, pure-Python
library: strict, so a misspelt key or a value of the wrong type is refused, not ignored).
"""
from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dacite

from training.network import NetworkConfig, preset

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


class RecipeError(ValueError):
    """A recipe file or a --set override that does not fit the schema."""


@dataclass(frozen=True)
class Data:
    root: str = "../shared/data"  # folder holding ferplus/ and ravdess-speech-16k/
    workers: int = 0  # DataLoader worker processes


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """What every recipe holds; each trainer's schema adds its stages."""

    name: str
    preset: str  # training/network.py's PRESETS
    seed: int = 0
    network: dict = field(default_factory=dict)  # overrides of the preset's NetworkConfig
    data: Data = Data()

    @property
    def network_config(self) -> NetworkConfig:
        return NetworkConfig.from_dict({**preset(self.preset).to_dict(), **self.network})

    def to_dict(self) -> dict:
        """Plain types only, so torch.load(weights_only=True) reads it back."""
        return asdict(self)


# dacite's rules: TOML arrays become tuples, integers are accepted where a float is asked.
_DACITE = dacite.Config(strict=True, cast=[tuple],
                        type_hooks={float: lambda v: float(v) if type(v) is int else v})


def trainer_module(preset_name: str, network: dict | None = None):
    """The module that trains this network (it defines RECIPE and run()): the preset's,
    with the recipe's [network] overrides."""
    try:
        fusion = (network or {}).get("fusion") or preset(preset_name).fusion
    except ValueError as error:
        raise RecipeError(f"preset: {error}") from None
    experts = fusion == "experts"
    return importlib.import_module("training.train_experts" if experts else "training.train")


def _field_types(schema) -> dict:
    """Field name -> type of a recipe dataclass, or of [network]'s NetworkConfig."""
    return typing.get_type_hints(NetworkConfig if schema is dict else schema)


def _key_type(schema, keys: list[str]):
    """The annotated type at a dotted key, or RecipeError naming the first unknown part."""
    for depth, key in enumerate(keys):
        types = _field_types(schema)
        if key not in types:
            where = ".".join(keys[:depth]) or "the recipe"
            raise RecipeError(f"unknown key {'.'.join(keys[:depth + 1])!r}: {where} has "
                              f"{', '.join(sorted(types))}")
        schema = types[key]
        if depth < len(keys) - 1 and not (dataclasses.is_dataclass(schema) or schema is dict):
            raise RecipeError(f"{'.'.join(keys[:depth + 1])} is a value, not a table")
    return schema


def _check_keys(schema, table: dict, prefix: list[str]) -> None:
    for key, value in table.items():
        kind = _key_type(schema, [*prefix, key])
        if isinstance(value, dict) and (dataclasses.is_dataclass(kind) or kind is dict):
            _check_keys(schema, value, [*prefix, key])


def _text_is_value(kind) -> bool:
    """Whether a --set value for this type is taken as written (strings, names, paths)."""
    options = typing.get_args(kind) if typing.get_origin(kind) is typing.Union else (kind,)
    return any(option is str or typing.get_origin(option) is typing.Literal
               for option in options)


def parse_override(item: str, schema) -> tuple[list[str], object]:
    """``KEY=VALUE`` -> (dotted key, value): text for string keys, else a TOML value
    (``3``, ``1e-3``, ``true``, ``["audio", "visual"]``)."""
    key, separator, text = item.partition("=")
    if not separator or not key.strip():
        raise RecipeError(f"--set {item!r}: write KEY=VALUE, e.g. voice.epochs=3")
    keys = key.strip().split(".")
    try:
        kind = _key_type(schema, keys)
    except RecipeError as error:
        raise RecipeError(f"--set {item}: {error}") from None
    if _text_is_value(kind) and not text.startswith(('"', "'")):
        return keys, text
    try:
        return keys, tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        raise RecipeError(f"--set {item}: {text!r} is not a value (a number, true/false, "
                          f"a quoted string or a [list])") from None


def _describe(kind) -> str:
    """A type as a recipe's reader would name it."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(choice) for choice in args)
    if origin is tuple and args[-1:] == (Ellipsis,):
        return f"a list, each {_describe(args[0])}"
    if origin is tuple:
        return f"a list of {len(args)} {_describe(args[0])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join("absent" if option is type(None) else _describe(option)
                           for option in args)
    return getattr(kind, "__name__", str(kind))


def from_dict(raw: dict, overrides: tuple[str, ...] = ()) -> Recipe:
    """A recipe's tables (file or checkpoint), with ``--set`` overrides, -> its config."""
    raw = {key: value for key, value in raw.items()}
    for item in overrides:  # the preset first: it decides the schema of the rest
        if item.partition("=")[0].strip() == "preset":
            raw["preset"] = item.partition("=")[2]
    if not isinstance(raw.get("preset"), str):
        raise RecipeError("the recipe has no preset (e.g. preset = \"small\")")
    schema = trainer_module(raw["preset"], raw.get("network")).RECIPE
    for item in overrides:
        keys, value = parse_override(item, schema)
        table = raw
        for key in keys[:-1]:
            table[key] = dict(table.get(key) or {})  # copies: the caller's dict stays as it was
            table = table[key]
        table[keys[-1]] = value
    _check_keys(schema, raw, [])
    try:
        recipe = dacite.from_dict(schema, raw, _DACITE)
    except dacite.WrongTypeError as error:
        raise RecipeError(f"{error.field_path}: {error.value!r} is not "
                          f"{_describe(error.field_type)}") from None
    except dacite.MissingValueError as error:
        raise RecipeError(f"the recipe has no {error.field_path} (a required key or table)") from None
    recipe.network_config  # an unknown network value fails here, before any training
    return recipe


def read_recipe(path: str | Path, overrides: tuple[str, ...] = ()) -> Recipe:
    """A recipe file, with ``--set`` overrides applied, -> its frozen config."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as error:
        raise RecipeError(f"cannot read the recipe {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"{path} is not TOML: {error}") from None
    try:
        return from_dict(raw, tuple(overrides))
    except RecipeError as error:
        raise RecipeError(f"{path}: {error}") from None


def recipe_of(checkpoint: dict) -> Recipe:
    """The recipe a checkpoint (the dict load_checkpoint returns) was trained from."""
    if "recipe" not in checkpoint:
        raise RecipeError("this checkpoint predates recipe files: its card's "
                          "training_command says how it was made")
    return from_dict(checkpoint["recipe"])
