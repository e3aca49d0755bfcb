"""`saas --help` and every subcommand's help in French, like the rest of the product."""

from __future__ import annotations

import re

import click
from click.testing import CliRunner

from saas.cli import main

# Words that only English help would contain (checked on lower-case words of the help, once
# option names, choice lists and upper-case placeholders are set aside).
ENGLISH = {
    "the", "and", "this", "that", "show", "message", "exit", "usage", "commands", "command",
    "arguments", "with", "from", "into", "only", "every", "each", "its", "their", "when", "run",
    "runs", "create", "list", "print", "prints", "load", "set", "default", "required",
    "environment", "variables", "perform", "database", "migrations", "utility", "one", "all", "of",
    "to", "for", "is", "are", "be", "by", "or", "an", "debug", "jobs", "job", "until", "value",
}


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    yield path
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


def _words(help_text: str) -> set[str]:
    lines = help_text.splitlines()[1:]  # the usage line spells command names
    kept, in_commands = [], False
    for line in lines:
        if line and not line.startswith(" "):
            in_commands = line.rstrip().endswith(("Commandes:", "Commands:"))
        elif in_commands:
            line = re.sub(r"^  [\w-]+", " ", line)  # each listed command starts with its name
        kept.append(line)
    text = "\n".join(kept)
    text = re.sub(r"\[[^\]]*\|[^\]]*\]", " ", text)  # [choice|values] are values to type
    text = re.sub(r"(?<![\w-])--?[\w-]+", " ", text)  # option names
    text = re.sub(r"\b[A-ZÀ-Ý_]{2,}\b", " ", text)  # placeholders (SLUG, DOSSIER) and acronyms
    text = re.sub(r"«[^»]*»|'[^']*'|`[^`]*`", " ", text)  # quoted examples and values
    return {w.lower() for w in re.findall(r"[A-Za-zÀ-ÿ]+", text)}


def test_every_command_and_subcommand_has_french_help():
    runner = CliRunner()
    paths = list(_commands(main))
    assert ("tenants", "apply") in paths and ("worker",) in paths and ("demo", "load") in paths
    for path in paths:
        result = runner.invoke(main, [*path, "--help"], prog_name="saas", catch_exceptions=False)
        assert result.exit_code == 0, (path, result.output)
        output = result.output
        assert output.startswith("Utilisation : saas"), (path, output)
        assert "Afficher cette aide et quitter." in output, (path, output)
        english = sorted(_words(output) & ENGLISH)
        assert not english, f"saas {' '.join(path)} --help: English words {english}\n{output}"


def test_extension_commands_with_english_help_are_not_offered():
    # Flask-Migrate's `db` and Flask-Limiter's `limiter`: `saas init` changes the schema.
    result = CliRunner().invoke(main, ["--help"])
    assert "Perform database migrations" not in result.output
    assert "Flask-Limiter" not in result.output


def test_click_errors_are_french_too():
    result = CliRunner().invoke(main, ["serve", "--pool", "nulle-part"], prog_name="saas")
    assert result.exit_code == 2
    assert "Erreur : Valeur invalide pour '--pool'" in result.output
    assert "« saas serve --help » pour l'aide." in result.output
    result = CliRunner().invoke(main, ["tenants", "apply"])
    assert "Argument manquant 'DOSSIER'" in result.output


def test_code_docstrings_stay_in_english():
    # The help is given with help=: the docstrings remain the code's own documentation.
    assert main.callback.__doc__.startswith("Mutualis: operate")
    assert main.help.startswith("Mutualis : exploitation")
