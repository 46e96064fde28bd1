"""Kernel configuration: render a variant's fragment, merge it onto a base config, and prove it survived.

Like kunit's kunitconfig handling: the fragment is the contract. After olddefconfig, every option it
asked for must hold in the final .config; a dropped one fails by name, with the `depends on` of its
Kconfig entry and the current values of the symbols in it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmulab.core import templates
from mmulab.core.errors import ConfigError, UserError
from mmulab.core.fsutil import relative_from, write_atomic
from mmulab.core.tools import RUNNER, Runner
from mmulab.kconfig.dotconfig import kconfig_line, merge, parse_config, verify
from mmulab.kconfig.tree import KconfigSource, linux_source
from mmulab.kconfig.version import KernelVersion
from mmulab.project.model import Toolchain, Variant


class OptionsDropped(UserError):
    """Requested options that the tree's Kconfig dropped: each named with the reason read from that tree (a kernel
    series that cannot have them is not supported by the variant: `doit matrix` says so with these lines)."""

    template = "{what}: {count} requested option(s) did not survive {update}:{listed}"

    def __init__(self, what: str, count: int, update: str, problems: list[str]) -> None:
        super().__init__(what=what, count=count, update=update, listed="".join(f"\n  - {p}" for p in problems))
        self.problems = tuple(problems)


def fragment_context(
    variant: Variant,
    toolchain: Toolchain,
    base_config: str,
    kconfig: Mapping[str, Any],
    cmdline: str = "",
    linux_version: KernelVersion | None = None,
) -> dict[str, Any]:
    """The names a kernel fragment template sees (busybox's are busybox.template_context). The sysroot and the
    compiler's own header directory stay placeholders ({sysroot}, {gcc_include}): they are filled in when the
    build runs, so declaring tasks runs no compiler and cache keys do not depend on the checkout's path.
    `linux_version` is the tree's (kconfig.version.tree_version): a template branches on it where an option was
    added, renamed or removed between releases (`{% if linux_version >= (6, 7) %}`); a fragment is part of a
    kernel series' key through it."""
    context = {} if linux_version is None else {"linux_version": tuple(linux_version)}
    return {
        **context,
        "variant": variant.name,
        "mmu": variant.mmu,
        "features": list(variant.features),
        "base_config": base_config,
        "cmdline": cmdline,
        "cross_prefix": toolchain.cross_prefix,
        "sysroot": "{sysroot}",
        "gcc_include": "{gcc_include}",
        "kconfig": dict(kconfig),
    }


def render_template(template: Path, context: Mapping[str, Any]) -> str:
    """A Jinja2 config fragment: undefined names are errors, blocks leave no blank lines; checked as Kconfig."""
    import jinja2  # only when a fragment is rendered: a no-op run never needs it

    env = templates.environment(template.parent)
    env.filters["kconfig_line"] = kconfig_line
    try:
        text = env.get_template(template.name).render(**context)
    except jinja2.TemplateError as exc:
        where = f"{template}:{getattr(exc, 'lineno', None) or '?'}"
        facts = [f"variant {context['variant']}"] if "variant" in context else []  # busybox's sees no variant
        if "linux_version" in context:
            facts.append(f"linux {'.'.join(map(str, context['linux_version']))}")
        about = f" ({', '.join(facts)})" if facts else ""
        raise ConfigError(f"{where}: template error: {exc}{about}") from None
    parse_config(text, str(template))
    return text


def template_inputs(template: Path, context: Mapping[str, Any]) -> list[Any]:
    """What a rendered fragment depends on, known without rendering it (so a no-op run never imports
    jinja2): every file of the template's folder (a template may include another) and the context."""
    files = sorted(p for p in template.parent.iterdir() if p.is_file())
    return [template.name, [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files], dict(context)]


def fragment_inputs(variant: Variant, toolchain: Toolchain, linux_version: KernelVersion | None) -> list[Any]:
    """The inputs of render_fragment(variant, toolchain, linux_version): the template's and the extra fragments'."""
    context = fragment_context(variant, toolchain, variant.base_config, variant.kconfig, variant.cmdline, linux_version)
    return [template_inputs(variant.template, context), [(str(f), f.read_text()) for f in variant.fragments]]


def render_fragment(variant: Variant, toolchain: Toolchain, linux_version: KernelVersion) -> str:
    """The variant's kernel fragment for a tree of `linux_version`: its template rendered with its data, then its
    extra fragments."""
    context = fragment_context(variant, toolchain, variant.base_config, variant.kconfig, variant.cmdline, linux_version)
    text = render_template(variant.template, context)
    for fragment in variant.fragments:
        body = fragment.read_text()
        parse_config(body, str(fragment))
        text += f"\n# --- {fragment} ---\n{body}"
    return text


def make_args(source: Path, objdir: Path, toolchain: Toolchain, user_tree: bool = False) -> list[str]:
    """kbuild's command line; `user_tree`: `source` is the user's own tree (LINUX_SRC), named as it is."""
    return [
        "make",
        "-C",
        str(source),
        f"O={objdir}",
        *([] if user_tree else source_tree_arg(source, objdir)),
        f"ARCH={toolchain.arch}",
        f"CROSS_COMPILE={toolchain.cross_prefix}",
    ]


def source_tree_arg(source: Path, objdir: Path) -> list[str]:
    """kbuild's srctree as a path relative to the object directory (where its final make runs) when the two
    share a folder below /, e.g. build/src/linux and build/nommu/kernel/obj: no compile command then names an
    absolute path, so another checkout's commands are this one's and ccache hits them without rewriting every
    header path under its base_dir (that costs a cold kernel build ~8 %). The bytes built are the same: the
    kernel's prefix maps strip srctree either way. A tree elsewhere (/usr/src/...), and a user's own tree
    (LINUX_SRC, see make_args), keep kbuild's absolute path, which every build directory shares as it is (a
    relative one would differ with each build directory's depth, and so would the compile cache's keys)."""
    relative = relative_from(objdir, source)
    return [f"srctree={relative}"] if relative else []


def apply_fragment(
    make: list[str],
    objdir: Path,
    base_config: str,
    fragment: str,
    log: Path,
    what: str,
    update: list[str],
    source: KconfigSource,
    env: Mapping[str, str] | None = None,
    runner: Runner = RUNNER,
) -> str:
    """make <base_config>, merge the fragment, run `update` (olddefconfig...), verify; return the final .config.

    `source` is the Kconfig tree this build reads, parsed only to explain options that did not survive.
    """
    objdir.mkdir(parents=True, exist_ok=True)
    logged = runner.log(log)
    logged.run([*make, base_config], f"{what}: make {base_config}", env=env)
    config_path = objdir / ".config"
    config_path.write_text(merge(config_path.read_text(), fragment))
    logged.run([*make, *update], f"{what}: make {' '.join(update)}", feed=b"\n" * 20000, env=env)
    final_text = config_path.read_text()
    problems = verify(parse_config(fragment, "fragment"), parse_config(final_text), source)
    if problems:
        raise OptionsDropped(what=what, count=len(problems), update=update[-1], problems=problems)
    return final_text


def configure(
    source: Path,
    objdir: Path,
    variant: Variant,
    toolchain: Toolchain,
    fragment: str,
    log: Path,
    runner: Runner = RUNNER,
    user_tree: bool = False,
    dropped_record: Path | None = None,
) -> str:
    """Produce a verified kernel .config in `objdir` from the variant's base config and fragment. The options
    olddefconfig dropped, with the tree's reasons, also go to `dropped_record` (JSON), which is absent otherwise."""
    if dropped_record:
        dropped_record.unlink(missing_ok=True)
    try:
        return apply_fragment(
            make_args(source, objdir, toolchain, user_tree),
            objdir,
            variant.base_config,
            fragment,
            log,
            f"kernel config {variant.name}",
            ["olddefconfig"],
            linux_source(source, toolchain.arch),
            runner=runner,
        )
    except OptionsDropped as dropped:
        if dropped_record:
            write_atomic(dropped_record, json.dumps(list(dropped.problems), indent=2) + "\n")
        raise
