"""The Kconfig tree a build reads and the explanations for dropped options: synthetic trees (fast),
and the real 6.12 tree through the real olddefconfig (slow)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from textwrap import dedent

import pytest

from mmulab.build import kernelconfig
from mmulab.core.errors import UserError
from mmulab.kconfig import dotconfig
from mmulab.kconfig import tree as kconfig_tree
from mmulab.kconfig.tree import NO_SUCH_SYMBOL, KconfigSource, explain, linux_source
from mmulab.project.loader import load_project

FILES = {
    "Kconfig": """\
        mainmenu "Test/$(ARCH) Kernel Configuration"

        source "scripts/Kconfig.include"
        source "arch/$(SRCARCH)/Kconfig"
        source "lib/Kconfig"  # generic
        osource "no/such/Kconfig"

        menu "Kernel hacking"
        \tdepends on DEBUG_KERNEL
        \tvisible if EXPERT

        source "lib/Kconfig.debug"

        endmenu
        """,
    "scripts/Kconfig.include": """\
        quote := "
        cc-option = $(success,$(CC) -Werror $(1) -c -x c /dev/null -o /dev/null)
        """,
    "arch/riscv/Kconfig": """\
        config RISCV
        \tdef_bool y
        \tselect HAS_THING

        config MMU
        \tbool "MMU-based Paged Memory Management Support"
        \tdefault y
        \thelp
        \t  Select if you want MMU-based virtualised addressing space.

        \t  config FAKE appears in this help text only.
        if $(cc-option,-mfoo)
        config CC_FOO
        \tbool "foo"
        endif

        choice
        \tprompt "Base ISA"
        \tdepends on MMU
        \tdefault ARCH_RV64I

        config ARCH_RV32I
        \tbool "RV32I"

        config ARCH_RV64I
        \tbool "RV64I"

        endchoice

        rsource "Kconfig.socs"
        orsource "Kconfig.none*"
        """,
    "arch/riscv/Kconfig.socs": """\
        config SOC_VIRT
        \tbool "QEMU Virt Machine"
        \tdepends on MMU
        """,
    "arch/arm/Kconfig": """\
        config SHARED
        \tbool "shared, arm's"
        \tdepends on ARM_ONLY_THING

        config ARM_LPAE
        \tbool "LPAE"
        """,
    "lib/Kconfig": """\
        config SHARED
        \tbool "shared, generic"
        \tdepends on MMU && !NOT_THIS

        config HAS_THING
        \tbool

        config LOG_SHIFT
        \tint "log shift"
        \trange 12 25
        \tdefault 17

        config MULTI
        \tbool "multi (A)"
        \tdepends on A

        config MULTI
        \tbool "multi (B)" if C
        \tdepends on B

        config MODULAR
        \ttristate "modular"
        \tdepends on SHARED_M

        config MODULES
        \tbool "Enable loadable module support"
        """,
    "lib/Kconfig.debug": """\
        menuconfig RUNTIME_TESTING_MENU
        \tbool "Runtime Testing"

        if RUNTIME_TESTING_MENU

        config LIST_TEST
        \ttristate "list test" if !ALL_TESTS
        \tdepends on KUNIT
        \tdefault KUNIT_ALL_TESTS

        endif # RUNTIME_TESTING_MENU
        """,
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text))
    return root


def line_of(root: Path, name: str, text: str) -> int:
    """The line of `root/name` that starts with `text` (after indentation)."""
    lines = (root / name).read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.strip().startswith(text))


@pytest.fixture
def tree_root(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "linux", FILES)


@pytest.fixture
def tree(tree_root: Path) -> kconfig_tree.KconfigTree:
    return linux_source(tree_root, "riscv").load()


GOOD = {"RISCV": "y", "MMU": "y", "KUNIT": "y", "DEBUG_KERNEL": "y", "EXPERT": "y", "RUNTIME_TESTING_MENU": "y"}


def test_sources_follow_srcarch_not_every_kconfig_file(tree_root: Path, tree: kconfig_tree.KconfigTree) -> None:
    assert [(e.file, e.line) for e in tree.entries["SHARED"]] == [("lib/Kconfig", 1)]
    assert "ARM_LPAE" not in tree.entries
    message = explain(tree, "SHARED", {"MMU": "n"}, "y")
    assert message == "; unmet 'depends on MMU && !NOT_THIS' at lib/Kconfig:1 (MMU=n, NOT_THIS=n): add CONFIG_MMU=y"
    arm = linux_source(tree_root, "arm").load()
    assert [e.file for e in arm.entries["SHARED"]] == ["arch/arm/Kconfig", "lib/Kconfig"]


def test_rsource_osource_globs_and_help_text(tree_root: Path, tree: kconfig_tree.KconfigTree) -> None:
    assert tree.entries["SOC_VIRT"][0].file == "arch/riscv/Kconfig.socs"
    assert "FAKE" not in tree.entries
    assert tree.missing == ()
    assert tree_root / "arch/riscv/Kconfig.socs" in tree.files
    (tree_root / "lib/Kconfig.debug").unlink()
    broken = linux_source(tree_root, "riscv").load()
    assert broken.missing == ("Kconfig:12: lib/Kconfig.debug",)


def test_if_block_condition_is_named_with_its_fix(tree: kconfig_tree.KconfigTree) -> None:
    values = {**GOOD, "RUNTIME_TESTING_MENU": "n"}
    message = explain(tree, "LIST_TEST", values, "y")
    assert message == (
        "; inside 'if RUNTIME_TESTING_MENU' at lib/Kconfig.debug:4 (RUNTIME_TESTING_MENU=n):"
        " add CONFIG_RUNTIME_TESTING_MENU=y"
    )
    entry = tree.entries["LIST_TEST"][0]
    assert [c.kind for c in entry.conditions] == ["menu", "if"]
    assert [c.kind for c in entry.depends] == ["depends on"]
    assert [c.kind for c in entry.prompt_conditions] == ["visible if", "prompt if"]


def test_every_unmet_layer_is_named(tree: kconfig_tree.KconfigTree) -> None:
    values = {"RUNTIME_TESTING_MENU": "n", "DEBUG_KERNEL": "n", "KUNIT": "m"}
    notes = explain(tree, "LIST_TEST", values, "y").split("; ")[1:]
    menu = line_of(tree.roots[0], "Kconfig", "menu")
    assert notes == [
        f"inside 'menu \"Kernel hacking\"' at Kconfig:{menu}: unmet 'depends on DEBUG_KERNEL' (DEBUG_KERNEL=n):"
        " add CONFIG_DEBUG_KERNEL=y",
        "inside 'if RUNTIME_TESTING_MENU' at lib/Kconfig.debug:4 (RUNTIME_TESTING_MENU=n):"
        " add CONFIG_RUNTIME_TESTING_MENU=y",
        "unmet 'depends on KUNIT' at lib/Kconfig.debug:6 (KUNIT=m) limits it to m: add CONFIG_KUNIT=y",
    ]
    as_module = explain(tree, "LIST_TEST", values, "m")
    assert as_module.startswith("; m needs CONFIG_MODULES=y") and as_module.count("; ") == 3
    assert "KUNIT" not in as_module


def test_hidden_prompt_is_named_when_dependencies_are_met(tree: kconfig_tree.KconfigTree) -> None:
    message = explain(tree, "LIST_TEST", {**GOOD, "EXPERT": "n"}, "y")
    assert "prompt hidden inside 'menu \"Kernel hacking\"'" in message and "'visible if EXPERT' (EXPERT=n)" in message
    message = explain(tree, "LIST_TEST", {**GOOD, "ALL_TESTS": "y"}, "y")
    assert message == (
        "; prompt hidden: 'if !ALL_TESTS' at lib/Kconfig.debug:7 (ALL_TESTS=y):"
        " remove CONFIG_ALL_TESTS (set '# CONFIG_ALL_TESTS is not set')"
    )
    assert explain(tree, "LIST_TEST", GOOD, "y") == ""


def test_choice_depends_and_members(tree: kconfig_tree.KconfigTree) -> None:
    choice = line_of(tree.roots[0], "arch/riscv/Kconfig", "choice")
    assert explain(tree, "ARCH_RV32I", {"MMU": "n"}, "y") == (
        f"; inside 'choice' at arch/riscv/Kconfig:{choice}: unmet 'depends on MMU' (MMU=n): add CONFIG_MMU=y"
    )
    values = {"MMU": "y", "ARCH_RV64I": "y"}
    assert explain(tree, "ARCH_RV32I", values, "y") == (
        f"; a member of the 'choice' at arch/riscv/Kconfig:{choice}, which has CONFIG_ARCH_RV64I=y instead"
    )
    assert "request another member as y" in explain(tree, "ARCH_RV64I", values, "n")


def test_several_definitions_one_met_means_the_others_do_not_matter(tree: kconfig_tree.KconfigTree) -> None:
    both = explain(tree, "MULTI", {}, "y")
    assert "'depends on A' at lib/Kconfig:" in both and "'depends on B' at lib/Kconfig:" in both
    one = explain(tree, "MULTI", {"B": "y"}, "y")
    assert "depends on A" not in one
    assert one.startswith("; prompt hidden: 'if C' at lib/Kconfig:") and one.endswith("(C=n): add CONFIG_C=y")
    assert explain(tree, "MULTI", {"A": "y"}, "y") == ""


def test_no_prompt_range_modules_and_selects(tree: kconfig_tree.KconfigTree) -> None:
    assert explain(tree, "HAS_THING", {"RISCV": "y"}, "y") == (
        "; no prompt at lib/Kconfig:5: a fragment cannot set it, only a 'select' (selected by RISCV=y)"
    )
    assert "selected by RISCV=y" in explain(tree, "HAS_THING", {"RISCV": "y", "HAS_THING": "y"}, "n")
    assert explain(tree, "LOG_SHIFT", {}, "40") == "; 40 is outside 'range 12 25' at lib/Kconfig:10"
    assert explain(tree, "LOG_SHIFT", {}, "14") == ""
    assert explain(tree, "MMU", {}, "m") == "; MMU is a bool: it can be y or n, not m"
    assert explain(tree, "MODULAR", {"SHARED_M": "y"}, "m") == "; m needs CONFIG_MODULES=y (add it, or request y)"
    assert "(SHARED_M=m) limits it to m" in explain(tree, "MODULAR", {"SHARED_M": "m", "MODULES": "y"}, "y")


def test_unknown_and_other_architecture_symbols(tree: kconfig_tree.KconfigTree) -> None:
    assert explain(tree, "NO_SUCH_OPTION", {}, "y") == NO_SUCH_SYMBOL
    assert explain(tree, "ARM_LPAE", {}, "y") == " (defined only for other architectures: arch/arm/Kconfig:5)"


def test_macro_conditions_are_never_blamed(tree: kconfig_tree.KconfigTree) -> None:
    assert tree.entries["CC_FOO"][0].conditions[0].expression == "$(cc-option,-mfoo)"
    assert explain(tree, "CC_FOO", {}, "y") == ""


def test_busybox_layout_objdir_first_and_env_variables(tmp_path: Path) -> None:
    tree_dir = write_tree(
        tmp_path / "busybox",
        {
            "Config.in": 'mainmenu "BusyBox Configuration"\nconfig NOMMU\n\tbool "no MMU"\nsource shell/Config.in\n'
            'source "$EXTRA/Config.in"\n',
            "shell/Config.in": 'config STALE\n\tbool "stale in-tree copy"\n',
            "extra/Config.in": 'config EXTRA_THING\n\tbool "extra"\n\tdepends on !NOMMU\n',
        },
    )
    objdir = write_tree(
        tmp_path / "obj",
        {"shell/Config.in": 'menu "Shells"\nconfig ASH\n\tbool "ash"\n\tdefault y\n\tdepends on !NOMMU\nendmenu\n'},
    )
    tree = KconfigSource((objdir, tree_dir), "Config.in", (("EXTRA", "extra"),)).load()
    assert "STALE" not in tree.entries
    assert explain(tree, "ASH", {"NOMMU": "y"}, "y") == (
        "; unmet 'depends on !NOMMU' at shell/Config.in:2 (NOMMU=y):"
        " remove CONFIG_NOMMU (set '# CONFIG_NOMMU is not set')"
    )
    assert tree.entries["EXTRA_THING"][0].file == "extra/Config.in"


def test_verify_parses_the_tree_once_for_several_problems(tree_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads = []
    real_load = kconfig_tree.load
    monkeypatch.setattr(kconfig_tree, "load", lambda *args: loads.append(args) or real_load(*args))
    requested = {"SOC_VIRT": "y", "ARCH_RV32I": "y", "TYPO": "y"}
    problems = dotconfig.verify(requested, {"MMU": "n"}, linux_source(tree_root, "riscv"))
    assert len(loads) == 1 and len(problems) == 3
    assert problems[0] == (
        "CONFIG_SOC_VIRT=y requested, but the final .config has # CONFIG_SOC_VIRT is not set;"
        " unmet 'depends on MMU' at arch/riscv/Kconfig.socs:1 (MMU=n): add CONFIG_MMU=y"
    )
    assert problems[2].endswith(NO_SUCH_SYMBOL)
    assert dotconfig.verify({"MMU": "y"}, {"MMU": "y"}, linux_source(tree_root, "riscv")) == [] and len(loads) == 1
    missing = dotconfig.verify({"A": "y"}, {}, linux_source(tree_root / "nowhere", "riscv"))
    assert "Kconfig tree not readable" in missing[0]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$(cc-option,-mfoo) && MMU", 2),
        ('LOCALVERSION = "hi"', 2),
        ("LOG_SHIFT >= 14 && LOG_SHIFT < 0x10", 2),
        ("LOG_SHIFT > 20", 0),
        ("64BIT && !(A || MODS)", 1),
        ("m", 1),
    ],
)
def test_evaluate_macros_numbers_and_strings(expression: str, expected: int) -> None:
    values = {"MMU": "y", "LOCALVERSION": '"hi"', "LOG_SHIFT": "14", "64BIT": "y", "MODS": "m"}
    assert kconfig_tree.evaluate(expression, values) == expected


@pytest.mark.slow
def test_real_tree_explains_list_kunit_test_and_other_architectures(tmp_path: Path, kernel_tree: Path) -> None:
    project = load_project()
    options = {"KUNIT": True, "LIST_KUNIT_TEST": True, "EFI": True, "ARM_LPAE": True}
    variant = replace(project.variants["nommu"], kconfig=options)
    with pytest.raises(UserError) as error:
        kernelconfig.configure(
            kernel_tree,
            tmp_path / "obj",
            variant,
            project.toolchain,
            kernelconfig.render_fragment(variant, project.toolchain, project.pinned_linux_version()),
            tmp_path / "log",
        )
    lines = {line.split()[1].split("=")[0]: line for line in str(error.value).splitlines()[1:]}
    assert set(lines) == {"CONFIG_LIST_KUNIT_TEST", "CONFIG_EFI", "CONFIG_ARM_LPAE"}
    assert "inside 'if RUNTIME_TESTING_MENU' at lib/Kconfig.debug:" in lines["CONFIG_LIST_KUNIT_TEST"]
    assert "(RUNTIME_TESTING_MENU=n): add CONFIG_RUNTIME_TESTING_MENU=y" in lines["CONFIG_LIST_KUNIT_TEST"]
    assert "depends on KUNIT" not in lines["CONFIG_LIST_KUNIT_TEST"]
    # EFI is defined by arch/arm/Kconfig too (with AUTO_ZRELADDR...): only riscv's definition counts
    assert "unmet 'depends on MMU' at arch/riscv/Kconfig:" in lines["CONFIG_EFI"] and "MMU=n" in lines["CONFIG_EFI"]
    assert "arch/arm" not in lines["CONFIG_EFI"] and "AUTO_ZRELADDR" not in lines["CONFIG_EFI"]
    assert "defined only for other architectures: arch/arm/mm/Kconfig:" in lines["CONFIG_ARM_LPAE"]

    final = dotconfig.parse_config((tmp_path / "obj" / ".config").read_text())
    tree = linux_source(kernel_tree, "riscv").load()  # its speed: bench/bench_timings.py
    assert tree.missing == () and len(tree.files) > 1000
    assert [s for s in final if s not in tree.entries] == []
    assert explain(tree, "LIST_KUNIT_TEST", final, "y").startswith("; inside 'if RUNTIME_TESTING_MENU'")

    fixed = replace(variant, kconfig={"KUNIT": True, "LIST_KUNIT_TEST": True, "RUNTIME_TESTING_MENU": True})
    text = kernelconfig.configure(
        kernel_tree,
        tmp_path / "fixed",
        fixed,
        project.toolchain,
        kernelconfig.render_fragment(fixed, project.toolchain, project.pinned_linux_version()),
        tmp_path / "log2",
    )
    values = dotconfig.parse_config(text)
    assert values["LIST_KUNIT_TEST"] == "y" and values["KUNIT"] == "y" and values["MMU"] == "n"


# --- assertions that kill surviving mutants of the pure helpers (bench/bench_mutation.py) ---


def test_comments_end_a_line_except_inside_quotes_and_macros() -> None:
    strip = kconfig_tree._strip_comment
    assert strip("config FOO") == "config FOO"
    assert strip("default y   # a comment") == "default y"
    assert strip('prompt "a # in quotes" # comment') == 'prompt "a # in quotes"'
    assert strip("prompt 'it''s # here' # c") == "prompt 'it''s # here'"
    assert strip("depends on $(success,echo '#' x) # c") == "depends on $(success,echo '#' x)"
    assert strip("(A) # c") == "(A)" and strip("# only") == ""


def test_tokens_keep_nested_macros_and_quoted_strings_whole() -> None:
    assert kconfig_tree._tokens("$(f,$(g,1),2) && !X") == ["$(f,$(g,1),2)", "&&", "!", "X"]
    assert kconfig_tree._tokens("A || $(open") == ["A", "||", "$(open"]
    assert kconfig_tree._tokens("S = \"a b\" && T != 'c'") == ["S", "=", '"a b"', "&&", "T", "!=", "'c'"]
    assert kconfig_tree.symbols('$(f,X) && (B || A) && y && 12 && "q"') == ["A", "B"]


def test_srcarch_maps_the_kernels_arch_aliases() -> None:
    assert [kconfig_tree.srcarch(a) for a in ("i386", "x86_64", "sparc32", "sparc64", "parisc64", "riscv")] == [
        "x86",
        "x86",
        "sparc",
        "sparc",
        "parisc",
        "riscv",
    ]


def test_evaluate_values_constants_and_strings_exactly() -> None:
    evaluate = kconfig_tree.evaluate
    assert evaluate("n", {}) == 0 and evaluate("m", {}) == 1 and evaluate("y", {"y": "n"}) == 2
    assert evaluate("UNSET", {}) == 0 and evaluate("!UNSET", {}) == 2
    assert evaluate('S = "x"', {"S": '"x"'}) == 2 and evaluate("S = 'x'", {"S": '"x"'}) == 2
    assert evaluate('S = ""', {"S": '""'}) == 2 and evaluate('S = "x"', {"S": '"y"'}) == 0
    assert evaluate("N = 12", {"N": "12"}) == 2 and evaluate("12 = N", {"N": "0xc"}) == 2
    assert evaluate("N", {"N": "12"}) == 0  # a number is not y
