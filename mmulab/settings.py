"""Where things live: the checkout, the build directory, the shared download cache, and user overrides.

Everything a user may override comes from the environment, read here only, so tasks and tests agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else None


def _default_download_dir() -> Path:
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "mmulab" / "downloads"


@dataclass(frozen=True)
class Settings:
    """The resolved locations and overrides for one run of the pipeline."""

    configs_dir: Path
    build_dir: Path
    download_dir: Path
    config_overlay: Path | None
    linux_src: Path | None
    mirrors: tuple[str, ...]
    apt_sources: tuple[Path, ...]
    jobs: int
    source_date_epoch: int
    user_fragments: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def from_environment(cls) -> Settings:
        """Read MMULAB_* (and LINUX_SRC, SOURCE_DATE_EPOCH) from the environment."""
        mirrors = tuple(m for m in os.environ.get("MMULAB_MIRRORS", "").replace(",", " ").split() if m)
        apt_env = os.environ.get("MMULAB_APT_SOURCES", "").strip()
        apt_sources = (
            tuple(Path(p) for p in apt_env.split(":") if p)
            if apt_env
            else (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
        )
        fragments = {
            key.removeprefix("MMULAB_FRAGMENT_").lower(): Path(value).expanduser().resolve()
            for key, value in os.environ.items()
            if key.startswith("MMULAB_FRAGMENT_") and value.strip()
        }
        return cls(
            configs_dir=_env_path("MMULAB_CONFIGS") or PROJECT_ROOT / "configs",
            build_dir=_env_path("MMULAB_BUILD_DIR") or PROJECT_ROOT / "build",
            download_dir=_env_path("MMULAB_DL_DIR") or _default_download_dir(),
            config_overlay=_env_path("MMULAB_CONFIG_OVERLAY"),
            linux_src=_env_path("LINUX_SRC"),
            mirrors=mirrors,
            apt_sources=apt_sources,
            jobs=int(os.environ.get("MMULAB_JOBS") or os.cpu_count() or 1),
            source_date_epoch=int(os.environ.get("SOURCE_DATE_EPOCH") or 0),
            user_fragments=fragments,
        )
