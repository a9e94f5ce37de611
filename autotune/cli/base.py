"""What every command shares: the Typer app, one-line errors (bad input and usage errors alike), SIGTERM and SIGHUP
handled as Ctrl-C, and the progress and message helpers on stderr."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

try:  # typer 0.22+ carries its own copy of click; earlier ones use click itself
    from typer import _click as click  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover (depends on the installed typer)
    import click  # type: ignore[no-redef]

from autotune.errors import UserError

err = Console(stderr=True)


def error_line(message: str) -> None:
    """The one line bad input gets: 'autotune: error: ...' on stderr (the message is text, never Rich markup)."""
    err.print(f"[red]autotune: error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else text.strip()


class OneLineErrors(TyperGroup):
    """Usage errors (an unknown option, a missing value, a word that is not a number) as one line on stderr and
    exit code 2, like every other bad input, instead of click's usage box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as e:
            e.show()
            rv = 2
        except click.exceptions.ClickException as e:
            message = _first_line(e.format_message())
            error_line(message[:1].lower() + message[1:])
            rv = e.exit_code
        except typer.Abort:  # Ctrl-C at a prompt, or a pipe closed
            rv = 130
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    help="Measure how fast Ultralytics YOLO training runs on this machine, and find faster settings.",
    pretty_exceptions_enable=False,
)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C would be: every command ends the same way for all three (the probe's
    process group killed, the trial marked, the summary printed)."""


_signal = {"last": signal.SIGINT}  # which interrupt arrived: the exit code is 128 + its number


def _interrupt(signum: int, _frame: Any) -> None:
    _signal["last"] = signal.Signals(signum)
    raise Interrupted(signal.Signals(signum).name)


def interrupt_code() -> int:
    """128 + the signal's number, as a shell reports a process ended by it: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + int(_signal["last"])


def user_errors(fn: Callable[..., None]) -> Callable[..., None]:
    """Bad input is one line on stderr and exit code 2, never a traceback; SIGTERM and SIGHUP act as Ctrl-C."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        _signal["last"] = signal.SIGINT
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
        try:
            fn(*args, **kwargs)
        except UserError as e:
            error_line(str(e))
            raise typer.Exit(2) from None
        except KeyboardInterrupt:  # where the command has nothing of its own to say about it
            say(f"interrupted ({_signal['last'].name}): nothing is left running", "yellow")
            raise typer.Exit(interrupt_code()) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    return wrapper


def say(text: str, style: str | None = None) -> None:
    """A line on stderr, unwrapped (paths and commands stay whole), never read as Rich markup."""
    err.print(text, soft_wrap=True, markup=False, highlight=False, style=style)


def data_yaml(data: str | None) -> str:
    """The user's data.yaml, or the embedded default workload (generated once, then reused)."""
    if data is not None:
        return str(Path(data).expanduser().resolve())
    from autotune.data.demo import DemoSpec, write_demo_dataset

    with err.status("preparing the embedded default workload (synthetic PPE dataset)...") as status:

        def progress(done: int, total: int) -> None:
            status.update(f"generating the embedded default workload: {done}/{total} images")

        ds = write_demo_dataset(DemoSpec(), progress=progress)
    if not ds.reused:
        say(f"wrote {ds.n_train + ds.n_val} synthetic images to {ds.root} in {ds.seconds:.0f} s")
    return str(ds.data_yaml)


def progress_bar(label: str) -> Any:
    """A progress bar on stderr, for work counted in items (images written)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err,
                    transient=True)  # fmt: skip


def bar_callback(bar: Any, label: str) -> Callable[[int, int], None]:
    task = bar.add_task(label, total=None)
    return lambda done, total: bar.update(task, completed=done, total=total)
