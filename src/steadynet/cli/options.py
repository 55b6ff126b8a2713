"""The training options the subcommands share, built from :class:`~steadynet.config.TrainConfig`.

Every option of ``steadynet train`` that sets a config field is made here from the field's
metadata (:func:`steadynet.config.setting`: help, group, flags, choices), so a setting is
described once; ``steadynet doctor`` takes the same options less those its checks never use.
This module also reads ``--config FILE`` and turns parsed options into a ``TrainConfig``.
No subcommand module imports another: what two of them share lives here.
"""

import dataclasses
import os
import types

from ..config import OPTION_GROUPS, TrainConfig, option_fields, option_flags
from ..errors import ConfigError

DEFAULTS = TrainConfig()


def value_type(f):
    """How argparse reads field ``f``'s value: its ``type`` metadata, ``str`` where ``parse``
    reads it afterwards, else the field's annotation (``float | None`` -> ``float``)."""
    if f.metadata["type"] or f.metadata["parse"]:
        return f.metadata["type"] or str
    kind = f.type
    if isinstance(kind, types.UnionType):
        kind = next(k for k in kind.__args__ if k is not type(None))
    return kind


def add_config_options(p, skip_groups=(), skip=()):
    """Add an option for each :class:`TrainConfig` field to ``p``, in titled groups (``data
    options``, ``network options``, ...), leaving out the groups and fields named in
    ``skip_groups`` and ``skip``; returns the argument groups by name.

    Each option's value lands in ``args.<field>``, None where not given, so that the config
    file and the preset are overridden only by the options given (:func:`config_from_args`).
    """
    groups = {name: p.add_argument_group(f"{name} options") for name in OPTION_GROUPS if name not in skip_groups}
    for f in option_fields():
        meta = f.metadata
        if meta["group"] in skip_groups or f.name in skip:
            continue
        flags = option_flags(f.name)
        if value_type(f) is bool:  # a switch: given turns it on
            groups[meta["group"]].add_argument(
                *flags, dest=f.name, action="store_true", default=None, help=meta["help"]
            )
            continue
        text = meta["help"]
        if f.default is not None and "(default:" not in text:
            shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
            text = f"{text} (default: {shown})"
        groups[meta["group"]].add_argument(
            *flags,
            dest=f.name,
            default=None,
            metavar=None if meta["choices"] else meta["metavar"] or flags[0][2:].replace("-", "_").upper(),
            choices=meta["choices"],
            type=value_type(f),
            help=text,
        )
    return groups


def given_settings(args):
    """The fields set by options given on the command line, with their values read."""
    changes = {}
    for f in option_fields():
        value = getattr(args, f.name, None)
        if value is not None:
            changes[f.name] = f.metadata["parse"](value) if f.metadata["parse"] else value
    return changes


def config_from_args(args):
    """A TrainConfig from the defaults, the preset, the --config file and the options given."""
    changes = given_settings(args)
    if getattr(args, "config", None):
        changes = {**read_config_file(args.config), **changes}
    preset = changes.pop("preset", None)
    if preset:
        return TrainConfig.from_preset(preset, **changes)
    try:
        return dataclasses.replace(DEFAULTS, **changes).validate()
    except TypeError as exc:
        raise ConfigError(f"--config {args.config}: {exc}.") from None


def read_config_file(path):
    """The settings in a TOML file or a run's ``config.json`` (or run folder), as a dict of fields.

    TOML keys may be written as the options are (``batch-size``) or as the fields
    (``batch_size``); a ``[train]`` table, if present, is read instead of the top level.
    """
    import json

    where = f"--config {path}"
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
        where = f"--config {path}"
    if not os.path.isfile(path):
        raise ConfigError(f"{where}: no such file (expected a .toml file, a run's config.json or a run folder).")
    try:
        with open(path, "rb") as f:
            raw = f.read(1_000_001)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror or exc}).") from None
    if len(raw) > 1_000_000:
        raise ConfigError(f"{where}: larger than 1 MB; a config file is a few lines.")
    if path.endswith(".json"):
        try:
            d = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc}).") from None
        if isinstance(d, dict) and isinstance(d.get("config"), dict):  # a run's config.json
            d = d["config"]
    else:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        try:
            d = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{where}: not valid TOML ({exc}).") from None
        if isinstance(d.get("train"), dict):
            d = d["train"]
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a table of settings, found {type(d).__name__}.")
    fields = {f.name for f in option_fields()}
    renamed = {flag[2:].replace("-", "_"): name for name in fields for flag in option_flags(name)}  # lr, optimiser
    out = {}
    for key, value in d.items():
        name = renamed.get(key.replace("-", "_"), key.replace("-", "_"))
        if name not in fields:
            import difflib

            close = difflib.get_close_matches(name, fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys are {sorted(fields)}"
            raise ConfigError(f"{where}: unknown setting {key!r}{hint}")
        if name == "hidden" and isinstance(value, int):
            value = [value]
        out[name] = tuple(value) if name == "hidden" and isinstance(value, list) else value
    if (
        isinstance(out.get("data"), str)
        and not os.path.isabs(out["data"])
        and os.path.exists(os.path.join(os.path.dirname(os.path.abspath(path)), out["data"]))
    ):
        out["data"] = os.path.join(os.path.dirname(os.path.abspath(path)), out["data"])  # relative to the file
    return out
