"""The `msfkit` command: one click group whose commands load lazily.

Each command lives in its own module (`msfkit.cli.<module>`) and is imported only when it runs
or its help is shown, so `msfkit --help` never pays for torch or faiss.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from msfkit._version import __version__
from msfkit.cli import MAX_WIDTH, keep_help_page
from msfkit.models.errors import MsfkitError

# command name -> "module:attribute" under msfkit.cli
COMMANDS = {
    "export": "export:export",
    "push": "push:push",
    "models": "models_cmd:models",
    "train": "train:train",
    "embed": "embed:embed",
    "index": "index:index",
    "search": "search:search",
    "dedup": "dedup:dedup",
    "eval": "eval:eval_cmd",
    "datasets": "datasets:datasets",
    "store": "store_cmd:store",
    "serve": "serve:serve",
    "curate": "curate:curate",
}

# Spellings of the previous release, still accepted for one release with a line on stderr.
DEPRECATED = {"--out": "-o/--output", "--overwrite": "--force", "--memory-budget": "--memory"}

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": MAX_WIDTH}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(f"msfkit.cli.{module}"), attr)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Old option spellings become today's, each with one deprecation line on stderr."""
        return super().parse_args(ctx, [_current_spelling(a) for a in args])

    def invoke(self, ctx: click.Context):
        """User errors from the library become click errors: one line, exit code 1."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_stdout()  # a reader that stopped reading (`| head`): a quiet, successful end
            raise click.exceptions.Exit(0) from None
        except (MsfkitError, OSError) as e:
            raise click.ClickException(one_line(e)) from None


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="msfkit")
def cli() -> None:
    """Self-supervised image embeddings with MSF: train, embed, index, search, evaluate."""


def _current_spelling(arg: str) -> str:
    name, eq, value = arg.partition("=")
    if name not in DEPRECATED:
        return arg
    new = DEPRECATED[name]
    click.echo(f"msfkit: {name} is deprecated and goes in the next release; use {new}", err=True)
    return new.split("/")[-1] + eq + value


def one_line(e: BaseException) -> str:
    """The message of a user error squeezed onto one line."""
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror}"
    return one_line_text(str(e)) or type(e).__name__


def one_line_text(text: str) -> str:
    return " ".join(text.split())


def main(help_key: str | None = None) -> None:
    """Run a command line (the entry point, msfkit.cli:main, answers `-V` and a cached help page
    itself): every user error, usage errors included, is one line on stderr. With `help_key`, the
    line asks for the top-level help page: it is printed and kept under that key for the next time."""
    if help_key is not None:
        page = top_level_help()
        sys.stdout.write(page)
        keep_help_page(help_key, page)
        return
    code = 0
    try:
        code = cli.main(prog_name="msfkit", standalone_mode=False)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        sys.exit(0)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help())
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} -h')" if e.ctx is not None else ""
        click.echo(f"Error: {one_line_text(e.format_message())}{hint}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"Error: {one_line_text(e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except click.Abort as e:  # Ctrl-C (130), or SIGTERM where a command turns it into an interrupt (143)
        click.echo("Aborted.", err=True)
        sys.exit(getattr(e.__cause__, "exit_code", 130))
    if isinstance(code, int) and code:  # ctx.exit(n) in a command: click returns n without standalone mode
        sys.exit(code)


def top_level_help() -> str:
    """`msfkit -h` as click prints it."""
    with cli.make_context("msfkit", [], resilient_parsing=True) as ctx:
        return ctx.get_help() + "\n"


def _quiet_stdout() -> None:
    """stdout was closed early (`msfkit search ... | head -1`), as Unix tools treat it: point it at
    /dev/null so that nothing more is written and the interpreter's final flush is silent."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
