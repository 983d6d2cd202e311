"""The README and docs/*.md say only what runs: every command in a code block marked bash / sh /
shell / console names an existing entry point (a diffsep subcommand, a python -m module, a make
target, a script of the repository) with options that its real argparse parser accepts, config
files that exist and config keys the settings have; every Python block compiles and what it takes
from diffsep exists; every relative link points at a file; the README stays short."""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import shlex
from dataclasses import fields
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
README_MAX_LINES = 260

WRAPPERS = {"time", "nice", "sudo", "env", "exec"}  # run the command that follows them
EXTERNAL = {"apt-get", "pip", "git", "cd", "tensorboard", "nvidia-smi", "mkdir", "ls", ".", "source", "npm", "tar"}
SCRIPTS = {"train.py": "train", "separate.py": "separate"}  # the root shims
OVERRIDE = re.compile(r"^([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)=")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


# -- reading the pages ----------------------------------------------------------------------------
def code_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, line number of the opening fence) of every fenced block."""
    blocks, lang, body, start = [], None, [], 0
    for i, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```(\S*)", line)
        if fence and lang is None:
            lang, body, start = fence.group(1).lower(), [], i
        elif fence:
            blocks.append((lang, "\n".join(body), start))
            lang = None
        elif lang is not None:
            body.append(line)
    return blocks


def command_lines(lang: str, body: str) -> list[str]:
    """Shell command lines of a block, continuation lines joined; in a console block only the
    lines after a "$ " prompt (the rest is output)."""
    commands, current, in_command = [], "", lang != "console"
    for line in body.splitlines():
        if lang == "console" and not current:
            in_command = line.startswith("$ ")
            line = line[2:] if in_command else line
        if not in_command:
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            commands.append(current.strip())
        current = ""
    return commands


def simple_commands(line: str) -> list[list[str]]:
    """A command line split into its simple commands (at ;, &&, ||, |, &), comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    out, words = [], []
    for token in lexer:
        if token and set(token) <= set(";&|"):
            out, words = out + [words], []
        else:
            words.append(token)
    return [w for w in out + [words] if w]


def documented_commands() -> list[tuple[str, str]]:
    """(where, command line) of every command in the README and docs."""
    found = []
    for page in PAGES:
        for lang, body, line in code_blocks(page.read_text()):
            if lang in SHELL_LANGS:
                found += [(f"{page.relative_to(ROOT)}:{line}", c) for c in command_lines(lang, body)]
    return found


# -- what exists ----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {m.group(1) for m in re.finditer(r"^([A-Za-z0-9_-]+)\s*:(?!=)", text, re.M)}


@lru_cache(maxsize=1)
def config_fields() -> dict[str, set[str]]:
    """section -> keys, over every model family's configuration."""
    from diffsep.config.settings import config_class
    from diffsep.families import FAMILIES

    keys: dict[str, set[str]] = {}
    for kind in FAMILIES:
        for section in fields(config_class(kind)):
            keys.setdefault(section.name, set()).update(f.name for f in fields(section.default_factory))
    return keys


def subparser(parser, name: str):
    """The sub-parser ``name`` of a parser with sub-commands (``diffsep bench NAME``), or None."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name)
    return None


# -- checking one command -------------------------------------------------------------------------
def check_overrides(words: list[str], where: str) -> None:
    known = config_fields()
    for word in words:
        m = OVERRIDE.match(word)
        if m and m.group(2) not in known.get(m.group(1), ()):
            raise AssertionError(f"{where}: {word!r}: no config key {m.group(1)}.{m.group(2)} "
                                 f"(sections: {', '.join(sorted(known))})")


def check_diffsep(args: list[str], where: str) -> None:
    """``diffsep SUBCOMMAND ARGS``: a real subcommand, options its parser has, and a command line
    that parser accepts (types, choices, required options); train: a config file that loads with
    the overrides given."""
    from diffsep.cli.main import SUBCOMMANDS, build_parser

    assert args and args[0] in SUBCOMMANDS, \
        f"{where}: diffsep {' '.join(args[:1])}: not a subcommand ({', '.join(SUBCOMMANDS)})"
    name, rest = args[0], args[1:]
    parser = top = build_parser(name)
    if name == "bench":
        assert rest, f"{where}: diffsep bench needs a benchmark name"
        parser = subparser(top, rest[0])
        assert parser is not None, f"{where}: diffsep bench {rest[0]}: no such benchmark"
    valid = parser._option_string_actions
    for word in rest:
        option = word.split("=", 1)[0]
        if word.startswith("-") and not re.fullmatch(r"-[\d.]+", word) and option not in valid:
            raise AssertionError(f"{where}: diffsep {name}: no option {option} (options: "
                                 f"{', '.join(sorted(o for o in valid if o.startswith('--')))})")
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parsed = top.parse_args(rest)
    except SystemExit as e:
        if e.code:
            error = (stderr.getvalue().strip().splitlines() or ["refused"])[-1]
            raise AssertionError(f"{where}: diffsep {' '.join(args)}: {error}") from None
        return  # --help
    check_overrides(rest, where)
    if name == "train":
        from diffsep.config.settings import load_config

        config = ROOT / parsed.config
        assert config.is_file(), f"{where}: {parsed.config}: no such config"
        load_config(config, parsed.overrides)  # unknown keys and bad values raise, naming them


def check_tool(path: str, args: list[str], where: str) -> None:
    """A script of the repository: it exists; a Python tool's --options appear in its parser
    (unless it passes the options it does not know on, through parse_known_args)."""
    file = ROOT / path
    assert file.is_file(), f"{where}: {path}: no such file"
    if file.suffix != ".py":
        return
    source = file.read_text()
    if "parse_known_args" in source:
        return
    for word in args:
        option = word.split("=", 1)[0]
        if option.startswith("--"):
            assert f'"{option}"' in source, f"{where}: {path} has no option {option}"


def check_python(args: list[str], where: str) -> None:
    if args[:1] == ["-m"]:
        module, rest = args[1], args[2:]
        if module == "diffsep":
            return check_diffsep(rest, where)
        if module == "diffsep.bench":
            return check_diffsep(["bench", *rest], where)
        if module == "pytest":
            for word in rest:
                if word.startswith("tests/"):
                    assert (ROOT / word.split("::")[0]).exists(), f"{where}: {word}: no such test file"
            return
        assert module in ("pip", "venv") or importlib.util.find_spec(module) is not None, \
            f"{where}: python -m {module}: no such module"
        return
    script, rest = args[0], args[1:]
    if script in SCRIPTS:
        return check_diffsep([SCRIPTS[script], *rest], where)
    check_tool(script, rest, where)


def check_command(words: list[str], where: str) -> None:
    while words and (ENV_ASSIGNMENT.match(words[0]) or words[0] in WRAPPERS):
        words = words[1:]
    program, args = words[0], words[1:]
    if program == "diffsep":
        check_diffsep(args, where)
    elif program in ("python", "python3"):
        check_python(args, where)
    elif program.removeprefix("./") in SCRIPTS:
        check_diffsep([SCRIPTS[program.removeprefix("./")], *args], where)
    elif program == "torchrun":
        starts = [i for i, w in enumerate(args) if w == "-m" or w.endswith(".py")]  # after torchrun's options
        assert starts, f"{where}: torchrun runs neither a script nor a module"
        check_python(args[starts[0]:], where)
    elif program == "make":
        for target in (w for w in args if not ENV_ASSIGNMENT.match(w)):
            assert target in make_targets(), \
                f"{where}: make {target}: no such target ({', '.join(sorted(make_targets()))})"
    elif program in ("sh", "bash"):
        check_tool(args[0], args[1:], where)
    elif program.removeprefix("./") == "tools/gpu_check.sh":
        check_tool("tools/gpu_check.sh", [], where)
        check_diffsep(["bench", "gpu", "--out", *args], where)
    elif program.removeprefix("./").startswith("tools/"):
        check_tool(program.removeprefix("./"), args, where)
    else:
        assert program in EXTERNAL, f"{where}: {program}: not a command of this repository nor a known program"


# -- the tests ------------------------------------------------------------------------------------
COMMANDS = documented_commands()


def test_the_pages_have_commands_to_check():
    where = {w.split(":")[0] for w, _ in COMMANDS}
    assert "README.md" in where and len(where) >= 5


@pytest.mark.parametrize("where, line", COMMANDS, ids=[where for where, _ in COMMANDS])
def test_every_documented_command_names_what_exists(where, line):
    for words in simple_commands(line):
        check_command(words, where)


@pytest.mark.parametrize("bogus", [
    "diffsep separate mix.wav -o out/ --bogus-option 3",
    "diffsep separate mix.wav -o out/ --sampler nope",
    "diffsep evaluate --model m.pt --data-root d --out e --reprot",
    "diffsep frobnicate --out x",
    "diffsep bench score --seconds 4 --no-such-flag",
    "diffsep bench nosuchbench",
    "python -m diffsep.bench separate --lengths ten",
    "diffsep train configs/tiny.yaml data.root=x train.no_such_key=1",
    "diffsep train configs/tiny.yaml data.root=x train.batch_size=0",
    "diffsep train configs/no_such.yaml data.root=x",
    "python train.py configs/tiny.yaml modle.nf=8",
    "python tools/merge_corpora.py --out x --bogus a b",
    "python tools/no_such_tool.py",
    "python -m diffsep.no_such_module",
    "make deploy",
    "torchrun --nproc_per_node=2 train.py configs/tiny.yaml optim.lrr=1",
    "diffsepp separate x -o y",
    "tools/gpu_check.sh out/gpu --dry-rnu",
])
def test_a_bogus_command_is_caught(bogus):
    with pytest.raises((AssertionError, ValueError)):  # ValueError: load_config's ConfigError
        for words in simple_commands(bogus):
            check_command(words, "bogus")


def test_the_checker_reads_blocks_as_a_shell_would():
    text = "x\n```bash\nA=1 diffsep separate a.wav \\\n    -o out/   # note\nmake demo && make test\n```\n" \
           "```console\n$ diffsep evaluate --out e \\\n      --est-dir a --ref-dir b\n| table | output |\n```\n"
    blocks = code_blocks(text)
    assert [b[0] for b in blocks] == ["bash", "console"]
    lines = command_lines(*blocks[0][:2])
    assert [simple_commands(line) for line in lines] == [
        [["A=1", "diffsep", "separate", "a.wav", "-o", "out/"]], [["make", "demo"], ["make", "test"]]]
    lines = command_lines(*blocks[1][:2])  # the table is output, not a command
    assert [simple_commands(line) for line in lines] == [
        [["diffsep", "evaluate", "--out", "e", "--est-dir", "a", "--ref-dir", "b"]]]


def python_blocks():
    return [(f"{page.relative_to(ROOT)}:{line}", body) for page in PAGES
            for lang, body, line in code_blocks(page.read_text()) if lang == "python"]


@pytest.mark.parametrize("where, source", python_blocks(), ids=[where for where, _ in python_blocks()])
def test_python_blocks_compile_and_what_they_take_from_diffsep_exists(where, source):
    import diffsep

    compile(source, where, "exec")
    for module, names in re.findall(r"^from (diffsep[\w.]*) import ([\w, ]+)", source, re.M):
        imported = importlib.import_module(module)
        for name in (n.strip() for n in names.split(",")):
            assert hasattr(imported, name), f"{where}: {module} has no {name}"
    for name in re.findall(r"\bdiffsep\.(\w+)\(", source):
        assert name in diffsep.__all__, f"{where}: diffsep.{name} is not exported"


def test_relative_links_point_at_files():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            assert (page.parent / target.split("#")[0]).exists(), f"{page.relative_to(ROOT)}: broken link {target}"


def test_every_docs_page_is_linked_from_the_readme():
    text = README.read_text()
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in text, f"{page.name} is not linked from README.md"


def test_readme_stays_short_and_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    first_screen = "\n".join(lines[:40])
    assert "make demo" in first_screen and "make test" in first_screen


def test_make_and_ci_run_the_same_setup_script():
    makefile = (ROOT / "Makefile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert {"demo", "test"} <= make_targets()
    assert re.search(r"^demo:\n\t.*tools/setup\.sh demo", makefile, re.M)
    assert re.search(r"^test:\n\t.*tools/setup\.sh test", makefile, re.M)
    assert re.search(r"^sh tools/setup\.sh(\s|$)", ci, re.M)  # the same set-up; the test command:
    # tests/test_setup_script.py checks the README, .ci/run and `setup.sh test` run the same one
