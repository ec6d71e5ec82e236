"""Click commands whose usage errors are one line, like every other gymrec error: `PROG:
message` on stderr and exit code 2 (click's own form is a usage block, a hint and `Error:` over
four lines). A command's own `sys.exit(code)` passes through unchanged."""

from __future__ import annotations

import sys

import click


def one_line_errors(base: type[click.Command], prog: str) -> type[click.Command]:
    """`base` (click.Command or click.Group) reporting click's errors as one `prog:` line."""

    class OneLine(base):
        def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
                 **extra):
            if not standalone_mode:  # a caller that handles errors itself (tests, CliRunner)
                return super().main(args, prog_name, complete_var, False, **extra)
            try:
                code = super().main(args, prog_name or prog, complete_var, False, **extra)
            except click.ClickException as exc:
                click.echo(f"{prog}: {exc.format_message()}", err=True)
                sys.exit(exc.exit_code)
            except click.Abort:
                click.echo(f"{prog}: interrupted", err=True)
                sys.exit(130)
            sys.exit(code if isinstance(code, int) else 0)

    OneLine.__name__ = f"OneLine{base.__name__}"
    return OneLine
