"""The TOML reader under the loader: one table at a time, every mistake one line naming the file and the field."""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path
from types import UnionType
from typing import Any

from mmulab.core.errors import ConfigError
from mmulab.core.settings import PROJECT_ROOT, Settings


class Table:
    """A TOML table that remembers where it came from, so errors can name file and field."""

    def __init__(
        self, data: dict[str, Any], file: Path, where: str, base_dir: Path, key_files: dict[str, Path] | None = None
    ) -> None:
        self.data, self.file, self.where, self.base_dir = data, file, where, base_dir
        self.key_files = key_files or {}  # keys whose value came from another file (the overlay's)

    def _file_of(self, key: str) -> Path:
        return self.key_files.get(key.split(".", 1)[0], self.file)

    def _field(self, key: str) -> str:
        if not key:
            return self.where
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{display_path(self._file_of(key))}: {self._field(key)}: {problem}")

    def get(self, key: str, kind: type | UnionType | tuple[type, ...], default: Any = ..., hint: str = "") -> Any:
        if key not in self.data:
            if default is ...:
                raise self.fail(key, f"missing{f' ({hint})' if hint else ''}")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (typing.get_args(kind) or (kind,))
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kinds):
            names = getattr(kind, "__name__", None) or str(kind).replace(" | ", " or ")
            raise self.fail(key, f"expected {names}, found {value!r}")
        return value

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        values = self.get(key, list, default)
        if not all(isinstance(v, str) for v in values):
            raise self.fail(key, "expected a list of strings")
        return tuple(values)

    def table(self, key: str, default: Any = ...) -> Table:
        origins = {sub: file for sub, (file, _base) in self.data.get(f"__origin__{key}", {}).items()}
        return Table(self.get(key, dict, default), self._file_of(key), self._field(key), self.base_dir, origins)

    def choice(self, key: str, choices: tuple[str, ...], default: Any = ...) -> str:
        value: str = self.get(key, str, default)
        if value not in choices:
            raise self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def path(self, value: str) -> Path:
        return (self.base_dir / value).resolve()

    def entries(self, key: str) -> list[tuple[str, Table]]:
        """The named sub-tables of `key`, each with its own origin kept (overlay entries point elsewhere)."""
        tables = self.get(key, dict, {})
        origins = self.data.get(f"__origin__{key}", {})
        result = []
        for name, value in tables.items():
            file, base_dir = origins.get(name, (self._file_of(key), self.base_dir))
            if not isinstance(value, dict):
                raise ConfigError(f"{display_path(file)}: {self._field(key)}.{name}: expected a table")
            result.append((name, Table(value, file, f"{self._field(key)}.{name}", base_dir)))
        return result


def display_path(path: Path) -> str:
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{display_path(path)}: missing (restore it from git, or fix MMULAB_CONFIGS)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{display_path(path)}: invalid TOML: {exc}") from None


def load_table(settings: Settings, name: str, collections: tuple[str, ...]) -> Table:
    """Load configs/<name>; the overlay's file of the same name adds or replaces named entries."""
    path = settings.configs_dir / name
    data = _read_toml(path)
    overlay = settings.config_overlay / name if settings.config_overlay else None
    if overlay and overlay.exists():
        extra = _read_toml(overlay)
        replaced = {}  # top-level keys the overlay set whole: errors in them name the overlay
        for key, value in extra.items():
            merge = key in collections or key in data
            if isinstance(value, dict) and isinstance(data.get(key, {}), dict) and merge:
                data[key] = {**data.get(key, {}), **value}
                origins = data.setdefault(f"__origin__{key}", {})
                for entry in value:
                    origins[entry] = (overlay, overlay.parent)
            else:
                data[key] = value
                replaced[key] = overlay
        return Table(data, path, "", settings.configs_dir.parent, replaced)
    return Table(data, path, "", settings.configs_dir.parent)
