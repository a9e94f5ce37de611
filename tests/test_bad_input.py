"""Bad input through the real CLI entry point: every case ends cleanly (DESIGN.md, "Reliability rules").

The contract, checked for each case:

- exit code 2;
- exactly one non-empty line on stderr, starting with "autotune: error:", holding a specific substring;
- no traceback (an exception escaping the command is one, even where CliRunner swallows it);
- nothing written or changed outside the places the command owns (<tmp>/cache and <tmp>/ultra): each case runs
  with cwd a fresh folder whose whole tree is compared before and after, and so is the folder holding the shared
  dataset (a resized copy would go beside it);
- where a case holds a password, it appears nowhere (output, exception text, files written);
- no real work: a probe, a search, a training run, a subprocess or the demo renderer starting is a failure (guards
  below turn it into one at once), and every case runs under a timeout.

Cases the current code gets wrong are strict xfails with what goes wrong today: fixing one makes it XPASS, which
fails, so its mark must go with the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import itertools
import multiprocessing.process
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import make_dataset
from typer.testing import CliRunner

from autotune.cli import app

runner = CliRunner()

OWNED = ("cache", "ultra")  # the only folders under a case's tmp dir a command may write
SECRET = "SECRET"


# -- the case's world ----------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """One case's folders: tmp (cwd, snapshotted), tmp/inputs (what the case feeds in), and the shared dataset."""

    tmp: Path
    data: Path  # the shared good data.yaml (never modified; nothing written beside its folder either)
    studies: dict[str, Path]  # prepared SQLite storages by kind

    @property
    def inputs(self) -> Path:
        return self.tmp / "inputs"

    def write(self, rel: str, content: str | bytes) -> Path:
        p = self.inputs / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(self.fill(content), encoding="utf-8")
        return p

    def dataset(self, rel: str = "ds", n_train: int = 2, n_val: int = 1) -> Path:
        """A fresh small dataset of the case's own under inputs (free to break)."""
        return make_dataset(self.inputs / rel, n_train=n_train, n_val=n_val)

    def fill(self, text: str) -> str:
        return (
            text.replace("{data}", str(self.data))
            .replace("{ds}", str(self.data.parent))
            .replace("{in}", str(self.inputs))
            .replace("{tmp}", str(self.tmp))
        )


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    expected: str  # a substring the one error line must hold
    setup: Callable[[Ctx], Any] | None = None
    secrets: tuple[str, ...] = ()  # must appear nowhere
    no_db: bool = False  # the default SQLite storage must not be created
    storage: str | None = None  # a prepared storage copied to <tmp>/cache/studies.db: "finished" or "foreign"
    fresh: bool = False  # no cache folder yet (a machine autotune never ran on); else an empty one


def case(
    id: str,
    args: list[str],
    expected: str,
    setup: Callable[[Ctx], Any] | None = None,
    *,
    fail: str | None = None,
    timeout: float = 60,
    **kw: Any,
) -> Any:
    """A pytest.param; `fail` is what goes wrong today (a strict xfail)."""
    marks = [pytest.mark.timeout(timeout)]
    if fail:
        marks.append(pytest.mark.xfail(strict=True, reason=fail))
    return pytest.param(Case(tuple(args), expected, setup, **kw), id=id, marks=marks)


# -- guards: real work is a failure at once, not a slow test ---------------------------------------------------------


class WorkStarted(BaseException):
    """Bad input went past validation into real work (a BaseException: no `except Exception` swallows it)."""


# (module, attribute) where real work starts, in today's layout and in the restructured one (autotune/measure/,
# search/, train/, data/); a name that does not exist is skipped: the generic subprocess / multiprocessing guards
# and the per-case timeout still hold. The demo renderer's _paths matters most: `--images 1000000000` would build
# a list of 10^9 paths in this process before any subprocess starts.
WORK = (
    ("autotune.isolate", "run_isolated"),
    ("autotune.probe", "probe"),
    ("autotune.profiler", "profile"),
    ("autotune.search", "Search.run"),
    ("autotune.autobatch", "autobatch"),
    ("autotune.train", "train"),
    ("autotune.handover", "gather_phases"),
    ("autotune.resize", "write_copy"),
    ("autotune.resize", "compare_loaders"),
    ("autotune.loader", "loader_only"),
    ("autotune.cachebench", "cache_bench"),
    ("autotune.demo", "_paths"),
    ("autotune.measure.isolate", "run_isolated"),
    ("autotune.measure.probe", "probe"),
    ("autotune.measure.profile", "profile"),
    ("autotune.measure.loader", "loader_only"),
    ("autotune.measure.cachebench", "cache_bench"),
    ("autotune.search.runner", "Search.run"),
    ("autotune.search.autobatch", "autobatch"),
    ("autotune.train.run", "train"),
    ("autotune.train.handover", "gather_phases"),
    ("autotune.data.resize", "write_copy"),
    ("autotune.data.resize", "compare_loaders"),
    ("autotune.data.demo", "_paths"),
)


def _stop(what: str) -> Callable[..., Any]:
    def stop(*args: Any, **kwargs: Any) -> Any:
        raise WorkStarted(what)

    return stop


def install_guards(monkeypatch: pytest.MonkeyPatch) -> None:
    for module, attr in WORK:
        try:
            owner: Any = importlib.import_module(module)
        except ImportError:
            continue
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        if owner is not None and hasattr(owner, name):
            monkeypatch.setattr(owner, name, _stop(f"{module}.{attr}"))

    class NoPopen(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, args: Any, *a: Any, **k: Any) -> None:
            raise WorkStarted(f"subprocess {args!r}")

    monkeypatch.setattr(subprocess, "Popen", NoPopen)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", _stop("multiprocessing start"))
    # opening an unreachable storage is retried with sleeps (several seconds): the retries stay, the waits go
    for name, mod in list(sys.modules.items()):
        if name.startswith("autotune") and getattr(mod, "time", None) is time and hasattr(mod, "open_storage"):
            monkeypatch.setattr(mod, "time", _NoSleep())


class _NoSleep:
    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(_s: float) -> None:
        return None


# -- snapshots -------------------------------------------------------------------------------------------------------


def tree(root: Path) -> dict[str, str]:
    """Every entry under root (links not followed) with its kind and a hash of its bytes."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "special"
    return out


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(
        [f"+{k}" for k in after.keys() - before.keys()]
        + [f"-{k}" for k in before.keys() - after.keys()]
        + [f"~{k}" for k in before.keys() & after.keys() if before[k] != after[k]]
    )


def _owned(change: str) -> bool:
    top = change[1:].split("/", 1)[0]
    return top in OWNED


# -- fixtures --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The shared good dataset, prepared storages, and the third-party imports done once.

    Ultralytics writes its settings file and matplotlib its font cache when first imported (once per process, into
    the folders set at that moment): importing them here keeps those writes out of the cases, so a case's result
    does not depend on which case happens to run first.
    """
    base = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(base / "home"))
        mp.setenv("YOLO_CONFIG_DIR", str(base / "ultra"))
        mp.setenv("MPLCONFIGDIR", str(base / "mpl"))
        mp.setenv("YOLO_OFFLINE", "1")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import matplotlib.pyplot  # noqa: F401
            import optuna
            import ultralytics  # noqa: F401
        data = make_dataset(base / "datasets" / "good")  # its parent is watched too: resize writes beside it
        studies = {"finished": base / "finished.db", "foreign": base / "foreign.db"}
        optuna.create_study(study_name="other", storage=f"sqlite:///{studies['foreign']}")
        _finished_study(studies["finished"])
    return {"data": data, "studies": studies}


def _finished_study(path: Path) -> None:
    """A study written by a search with a fake probe: trials finished and feasible, study name 'test'."""
    import optuna

    try:
        from fakes import FakeClock, FakeProbe, make_search  # where the restructuring puts shared fakes
    except ImportError:
        from test_search import FakeClock, FakeProbe, make_search

    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    clock = FakeClock()
    make_search(storage, clock, FakeProbe(clock, seconds=10), budget_s=120).run()
    storage.engine.dispose()


@pytest.fixture()
def ctx(world: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Ctx:
    tmp = tmp_path_factory.mktemp("c")  # a neutral name: expected substrings must not match the case's own path
    (tmp / "inputs").mkdir()
    (tmp / "home").mkdir()
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("AUTOTUNE_CACHE", str(tmp / "cache"))
    monkeypatch.setenv("HOME", str(tmp / "home"))
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp / "ultra"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    install_guards(monkeypatch)
    return Ctx(tmp=tmp, data=world["data"], studies=world["studies"])


# -- the check -------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    exit_code: int | None
    stdout: str
    stderr: str
    exception: str | None  # the last line of an exception that escaped the command (a traceback for the user)
    work: str | None  # the real work that started


def run_cli(args: list[str]) -> Outcome:
    try:
        r = runner.invoke(app, args)
    except WorkStarted as e:
        return Outcome(None, "", "", None, str(e))
    exc = None
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        exc = "".join(traceback.format_exception_only(type(r.exception), r.exception)).strip().splitlines()[-1]
    return Outcome(r.exit_code, r.stdout, r.stderr, exc, None)


def problems(c: Case, ctx: Ctx, out: Outcome, written: list[str], dataset_changed: list[str]) -> list[str]:
    found = []
    if out.work:
        found.append(f"real work started: {out.work}")
    if out.exit_code is not None and out.exit_code != 2:
        found.append(f"exit code {out.exit_code}")
    text = out.stdout + out.stderr
    if out.exception or "Traceback" in text:
        found.append(f"traceback: {out.exception or 'in output'}")
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    if not out.work:
        if len(lines) != 1:
            found.append(f"{len(lines)} lines on stderr: {lines[:4]}")
        if not lines or not lines[0].startswith("autotune: error:"):
            found.append(f"first stderr line: {lines[0] if lines else None!r}")
        elif c.expected not in lines[0]:
            found.append(f"{c.expected!r} not in {lines[0]!r}")
    if written:
        found.append(f"written outside cache/ultra: {written[:6]}")
    if dataset_changed:
        found.append(f"shared dataset or its folder changed: {dataset_changed[:6]}")
    for s in c.secrets:
        if s in text or s in (out.exception or ""):
            found.append(f"secret {s!r} shown")
        for f in ctx.tmp.rglob("*"):
            if f.is_file() and not f.is_symlink() and s.encode() in f.read_bytes() and not _is_input(f, ctx):
                found.append(f"secret {s!r} written to {f.relative_to(ctx.tmp)}")
    if c.no_db and (ctx.tmp / "cache" / "studies.db").exists():
        found.append("created an empty SQLite storage cache/studies.db")
    return found


def _is_input(f: Path, ctx: Ctx) -> bool:
    return ctx.inputs in f.parents


# -- cases -----------------------------------------------------------------------------------------------------------

PROBE = ["probe", "--data", "{data}", "--device", "cpu"]
PROFILE = ["profile", "--data", "{data}", "--device", "cpu"]
SEARCH = ["search", "--data", "{data}", "--device", "cpu"]
RESIZE = ["resize", "--data", "{data}"]
DEMO = ["demo-data", "--out", "{tmp}/demo"]
GOOD_SPLITS = "path: {ds}\ntrain: images/train\nval: images/val\n"


def data_yaml(text: str | bytes) -> Callable[[Ctx], Any]:
    return lambda c: c.write("d.yaml", text)


def bad_label(line: str) -> Callable[[Ctx], Any]:
    def setup(c: Ctx) -> None:
        c.dataset()
        (c.inputs / "ds" / "labels" / "train" / "im1.txt").write_text(line + "\n")

    return setup


def symlink_loop(c: Ctx) -> None:
    """A train folder holding two links to its own parent (which holds no images): endless if links are followed."""
    train = c.inputs / "loop" / "train"
    train.mkdir(parents=True)
    os.symlink("..", train / "up1")
    os.symlink("..", train / "up2")
    c.write("loop/data.yaml", "train: train\nval: {ds}/images/val\nnames: [a, b, c]\n")


def fifo(c: Ctx) -> None:
    os.mkfifo(c.inputs / "fifo.yaml")


def alias_bomb() -> str:
    keys = "abcdefghi"
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, key in itertools.pairwise(keys):
        lines.append(f"{key}: &{key} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


def train_list(content: bytes) -> Callable[[Ctx], Any]:
    def setup(c: Ctx) -> None:
        c.write("train.txt", content)
        c.write("d.yaml", "train: {in}/train.txt\nval: {ds}/images/val\nnames: [a, b, c]\n")

    return setup


PROFILE_YAML = (
    "task: detect\nmode: train\nmodel: yolo11n.yaml\ndata: {data}\nepochs: 3\nbatch: 2\nworkers: 0\nimgsz: 64\n"
    "cache: false\ndevice: cpu\namp: true\nnbs: 64\noptimizer: auto\n"
)


def profile_file(yaml_text: str = PROFILE_YAML, sidecar: str | None = None) -> Callable[[Ctx], Any]:
    def setup(c: Ctx) -> None:
        c.write("p.yaml", yaml_text)
        if sidecar is not None:
            c.write("p.json", sidecar)

    return setup


def a_file(c: Ctx) -> None:
    c.write("file.txt", "I am a file\n")


def random_pt(c: Ctx) -> None:
    c.write("x.pt", bytes(range(256)) * 8)


def directory(rel: str) -> Callable[[Ctx], Any]:
    return lambda c: (c.inputs / rel).mkdir(parents=True)


LONG = "a" * 300  # longer than any file name may be (255 bytes)

DATA_CASES = [
    case("data-missing", ["probe", "--device", "cpu", "--data", "{in}/missing.yaml"], "not found"),
    case("data-is-directory", ["probe", "--device", "cpu", "--data", "{in}"], "not found"),
    case("data-empty-string", ["probe", "--device", "cpu", "--data", ""], "not found"),
    case("data-fifo", ["probe", "--device", "cpu", "--data", "{in}/fifo.yaml"], "not found", fifo, timeout=30),
    case(
        "data-name-300-chars",
        ["probe", "--device", "cpu", "--data", f"{{in}}/{LONG}.yaml"],
        "too long",
    ),
    case("data-empty-file", ["probe", "--device", "cpu", "--data", "{in}/d.yaml"], "expected a mapping", data_yaml("")),
    case(
        "data-comments-only",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "expected a mapping",
        data_yaml("# nothing here\n"),
    ),
    case(
        "data-malformed",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "not valid YAML",
        data_yaml("train: [oops\n"),
    ),
    case(
        "data-bad-indent",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "not valid YAML",
        data_yaml("train: a\n  val: b\n"),
    ),
    case(
        "data-yaml-list",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "expected a mapping",
        data_yaml("- a\n- b\n"),
    ),
    case(
        "data-yaml-scalar",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "expected a mapping",
        data_yaml("just words\n"),
    ),
    case(
        "data-alias-bomb",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "aliases are not allowed",
        data_yaml(alias_bomb()),
        timeout=30,
    ),
    case(
        "data-binary-garbage",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "a binary file, not a data.yaml",
        data_yaml(bytes(range(256))[::-1] * 4),
    ),
    case(
        "data-not-utf8",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "not UTF-8 text",
        data_yaml("path: /x\ntrain: a\nval: b\nnames: [caf\xe9]\n".encode("latin-1")),
    ),
    case(
        "nc-three-no-names",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'nc'",
        data_yaml(GOOD_SPLITS + "nc: three\n"),
    ),
    case(
        "nc-three-with-names",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'nc'",
        data_yaml(GOOD_SPLITS + "nc: three\nnames: [a, b, c]\n"),
    ),
    case(
        "nc-minus-one-no-names",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'nc'",
        data_yaml(GOOD_SPLITS + "nc: -1\n"),
    ),
    case(
        "nc-minus-one-with-names",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'nc'",
        data_yaml(GOOD_SPLITS + "nc: -1\nnames: [a]\n"),
    ),
    case(
        "nc-float",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'nc'",
        data_yaml(GOOD_SPLITS + "nc: 2.5\n"),
    ),
    case(
        "nc-bool",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'nc'",
        data_yaml(GOOD_SPLITS + "nc: true\n"),
    ),
    case(
        "path-a-list",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'path'",
        data_yaml("path: [1, 2]\ntrain: images/train\nval: images/val\nnames: [a]\n"),
    ),
    case(
        "path-300-chars",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "File name too long",
        data_yaml(f"path: /{LONG}\ntrain: images/train\nval: images/val\nnames: [a]\n"),
    ),
    case(
        "names-gap",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'names'",
        data_yaml(GOOD_SPLITS + "names: {0: a, 2: b}\n"),
    ),
    case(
        "names-key-not-int",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'names'",
        data_yaml(GOOD_SPLITS + "names: {0: a, x: b}\n"),
    ),
    case(
        "names-empty-list",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'names'",
        data_yaml(GOOD_SPLITS + "names: []\n"),
    ),
    case(
        "names-empty-mapping",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'names'",
        data_yaml(GOOD_SPLITS + "names: {}\n"),
    ),
    case(
        "names-a-string",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'names'",
        data_yaml(GOOD_SPLITS + "names: helmet\n"),
    ),
    case(
        "names-nested-lists",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'names'",
        data_yaml(GOOD_SPLITS + "names: [[a, b], c]\n"),
    ),
    case(
        "names-null-entry",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'names'",
        data_yaml(GOOD_SPLITS + "names: [a, null]\n"),
    ),
    case(
        "train-key-missing",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'train:' key missing",
        data_yaml("path: {ds}\nval: images/val\nnames: [a]\n"),
    ),
    case(
        "val-key-missing",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'val:' key missing",
        data_yaml("path: {ds}\ntrain: images/train\nnames: [a]\n"),
    ),
    case(
        "train-path-missing",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "does not exist",
        data_yaml("path: {ds}\ntrain: nowhere\nval: images/val\nnames: [a]\n"),
    ),
    case(
        "train-list-one-missing",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "does not exist",
        data_yaml("path: {ds}\ntrain: [images/train, nowhere]\nval: images/val\nnames: [a]\n"),
    ),
    case(
        "train-a-mapping",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'train'",
        data_yaml("path: {ds}\ntrain: {x: 1}\nval: images/val\nnames: [a]\n"),
    ),
    case(
        "val-path-missing",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "does not exist",
        data_yaml("path: {ds}\ntrain: images/train\nval: nowhere\nnames: [a]\n"),
    ),
    case(
        "no-images-empty-folder",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "no images found",
        lambda c: (directory("empty")(c), c.write("d.yaml", "train: {in}/empty\nval: {in}/empty\nnames: [a]\n")),
    ),
    case(
        "no-images-only-text-files",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "no images found",
        lambda c: (c.write("txt/a.txt", "x"), c.write("d.yaml", "train: {in}/txt\nval: {ds}/images/val\nnames: [a]\n")),
    ),
    case(
        "train-list-file-empty",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "no images found",
        train_list(b""),
    ),
    case(
        "train-list-file-not-utf8",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "train.txt",
        train_list(b"\xff\xfe\x00bad\n"),
    ),
    case(
        "train-list-missing-images",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "missing.jpg",
        train_list(b"/nowhere/missing.jpg\n"),
    ),
    case(
        "train-is-an-image-file",
        ["probe", "--device", "cpu", "--data", "{in}/d.yaml"],
        "'train'",
        data_yaml("path: {ds}\ntrain: images/train/im0.jpg\nval: images/val\nnames: [a, b, c]\n"),
    ),
    case(
        "label-class-id-too-big",
        ["probe", "--device", "cpu", "--data", "{in}/ds/data.yaml"],
        "im1.txt",
        bad_label("7 0.5 0.5 0.2 0.2"),
    ),
    case(
        "label-three-fields",
        ["probe", "--device", "cpu", "--data", "{in}/ds/data.yaml"],
        "im1.txt",
        bad_label("0 0.5 0.5"),
    ),
    case(
        "label-not-numbers",
        ["probe", "--device", "cpu", "--data", "{in}/ds/data.yaml"],
        "im1.txt",
        bad_label("helmet left top wide tall"),
    ),
    case(
        "label-negative-coordinate",
        ["probe", "--device", "cpu", "--data", "{in}/ds/data.yaml"],
        "im1.txt",
        bad_label("0 -0.5 0.5 0.2 0.2"),
    ),
    case(
        "label-coordinate-above-one",
        ["probe", "--device", "cpu", "--data", "{in}/ds/data.yaml"],
        "im1.txt",
        bad_label("0 1.5 0.5 0.2 0.2"),
    ),
    case(
        "train-symlink-loop",
        ["probe", "--device", "cpu", "--data", "{in}/loop/data.yaml"],
        "loops back",
        symlink_loop,
        timeout=30,
    ),
    case("search-data-missing", ["search", "--device", "cpu", "--data", "{in}/missing.yaml"], "not found"),
    case(
        "search-data-no-images",
        ["search", "--device", "cpu", "--data", "{in}/d.yaml"],
        "no images found",
        lambda c: (directory("empty")(c), c.write("d.yaml", "train: {in}/empty\nval: {in}/empty\nnames: [a]\n")),
    ),
    case(
        "search-data-val-missing",
        ["search", "--device", "cpu", "--data", "{in}/d.yaml"],
        "does not exist",
        data_yaml("path: {ds}\ntrain: images/train\nval: nowhere\nnames: [a]\n"),
    ),
    case(
        "search-label-class-id-too-big",
        ["search", "--device", "cpu", "--data", "{in}/ds/data.yaml"],
        "im1.txt",
        bad_label("7 0.5 0.5 0.2 0.2"),
    ),
    case(
        "profile-data-malformed",
        ["profile", "--device", "cpu", "--data", "{in}/d.yaml"],
        "not valid YAML",
        data_yaml("names: [a\n"),
    ),
    case("resize-data-missing", ["resize", "--imgsz", "32", "--data", "{in}/missing.yaml"], "not found"),
    case(
        "resize-data-yaml-list",
        ["resize", "--imgsz", "32", "--data", "{in}/d.yaml"],
        "expected a mapping",
        data_yaml("- a\n"),
    ),
    case(
        "resize-data-nc-three",
        ["resize", "--imgsz", "32", "--data", "{in}/d.yaml"],
        "'nc'",
        data_yaml(GOOD_SPLITS + "nc: three\nnames: [a, b, c]\n"),
    ),
]

MODEL_CASES = [
    case("model-unknown-yaml", [*PROBE, "--model", "yolo99z.yaml"], "unknown model"),
    case("model-missing-pt", [*PROBE, "--model", "{in}/nope.pt"], "not found"),
    case("model-bare-pt-name", [*PROBE, "--model", "yolo11n.pt"], "never downloads"),
    case(
        "model-pt-not-a-checkpoint",
        [*PROBE, "--model", "{in}/x.pt"],
        "checkpoint",
        random_pt,
    ),
    case(
        "model-is-a-data-yaml",
        [*PROBE, "--model", "{data}"],
        "model",
    ),
    case(
        "model-empty-yaml-file",
        [*PROBE, "--model", "{in}/m.yaml"],
        "model",
        lambda c: c.write("m.yaml", ""),
    ),
    case("model-directory", [*PROBE, "--model", "{in}/models"], "is a folder", directory("models")),
    case("model-directory-named-pt", [*PROBE, "--model", "{in}/m.pt"], "is a folder", directory("m.pt")),
    case("model-directory-named-yaml", [*PROBE, "--model", "{in}/m.yaml"], "is a folder", directory("m.yaml")),
    case("model-empty-string", [*PROBE, "--model", ""], "--model is empty"),
    case("model-txt", [*PROBE, "--model", "model.txt"], "unknown model"),
    case("search-model-unknown", [*SEARCH, "--model", "yolo99z.yaml"], "unknown model"),
    case(
        "search-model-pt-not-a-checkpoint",
        [*SEARCH, "--model", "{in}/x.pt"],
        "checkpoint",
        random_pt,
    ),
    case("profile-model-empty-string", [*PROFILE, "--model", ""], "--model is empty"),
]

NUMBER_CASES = [
    case("probe-batch-0", [*PROBE, "--batch", "0"], "batch must be"),
    case("probe-batch-minus-1", [*PROBE, "--batch", "-1"], "batch must be"),
    case("probe-batch-1e9", [*PROBE, "--batch", "1000000000"], "batch"),
    case("search-batch-0", [*SEARCH, "--batch", "0"], "batch"),
    case("search-batch-1-to-1e9", [*SEARCH, "--batch", "1-1000000000"], "batch"),
    case("probe-imgsz-16", [*PROBE, "--imgsz", "16"], "imgsz must be"),
    case("probe-imgsz-99999", [*PROBE, "--imgsz", "99999"], "imgsz"),
    case("probe-imgsz-100", [*PROBE, "--imgsz", "100"], "multiple"),
    case("search-imgsz-16", [*SEARCH, "--imgsz", "16"], "imgsz"),
    case("search-imgsz-99999", [*SEARCH, "--imgsz", "99999"], "multiple"),
    case("search-imgsz-100", [*SEARCH, "--imgsz", "100"], "multiple"),
    case(
        "search-imgsz-99968",
        [*SEARCH, "--imgsz", "99968"],
        "imgsz",
    ),
    case("probe-workers-minus-1", [*PROBE, "--workers", "-1"], "workers must be"),
    case("probe-workers-100000", [*PROBE, "--workers", "100000"], "workers"),
    case("search-workers-minus-1", [*SEARCH, "--workers", "-1"], "workers"),
    case("search-workers-100000", [*SEARCH, "--workers", "0-100000"], "workers"),
    case("probe-iters-0", [*PROBE, "--iters", "0"], "iters must be"),
    case("probe-iters-minus-5", [*PROBE, "--iters", "-5"], "iters must be"),
    case("probe-iters-1e7", [*PROBE, "--iters", "10000000"], "iters"),
    case("probe-min-window-negative", [*PROBE, "--min-window", "-1"], "min window s must be"),
    case("probe-min-window-nan", [*PROBE, "--min-window", "nan"], "min window s must be"),
    case("profile-min-window-huge", [*PROFILE, "--min-window", "1e9"], "min window s must be"),
    case("search-iters-0", [*SEARCH, "--iters", "0"], "iters must be"),
    case("search-rank-on-unknown", [*SEARCH, "--rank-on", "val"], "--rank-on must be one of epoch, train"),
    case("probe-epochs-0", [*PROBE, "--epochs", "0"], "epochs must be"),
    case("probe-epochs-1e9", [*PROBE, "--epochs", "1000000000"], "epochs"),
    case("search-epochs-0", [*SEARCH, "--epochs", "0"], "epochs must be"),
    case("probe-timeout-0", [*PROBE, "--timeout", "0"], "timeout"),
    case("probe-timeout-minus-1", [*PROBE, "--timeout", "-1"], "timeout"),
    case("probe-timeout-nan", [*PROBE, "--timeout", "nan"], "timeout"),
    case("probe-memory-limit-0", [*PROBE, "--memory-limit", "0"], "memory limit"),
    case("probe-memory-limit-minus-1", [*PROBE, "--memory-limit", "-1"], "memory limit"),
    case("probe-memory-limit-2", [*PROBE, "--memory-limit", "2"], "memory limit"),
    case("probe-memory-limit-lots", [*PROBE, "--memory-limit", "lots"], "memory limit"),
    case("probe-memory-limit-0GiB", [*PROBE, "--memory-limit", "0GiB"], "memory limit"),
    case(
        "probe-memory-limit-tiny-fraction",
        [*PROBE, "--memory-limit", "0.0000001"],
        "memory limit",
    ),
    case(
        "probe-memory-limit-1KiB",
        [*PROBE, "--memory-limit", "1KiB"],
        "memory limit",
    ),
    case("search-vram-limit-tiny-fraction", [*SEARCH, "--vram-limit", "0.0000001"], "memory limit"),
    case("profile-memory-limit-2", [*PROFILE, "--memory-limit", "2"], "memory limit"),
    case("search-budget-0", [*SEARCH, "--budget", "0"], "more than zero"),
    case("search-budget-minus-5min", [*SEARCH, "--budget", "-5min"], "cannot read duration"),
    case("search-budget-soon", [*SEARCH, "--budget", "soon"], "cannot read duration"),
    case("search-budget-parsecs", [*SEARCH, "--budget", "20 parsecs"], "cannot read duration"),
    case("search-budget-1e9-hours", [*SEARCH, "--budget", "1000000000h"], "budget"),
    case("search-target-epoch-0", [*SEARCH, "--target-epoch", "0"], "more than zero"),
    case(
        "demo-images-1e9",
        [*DEMO, "--images", "1000000000"],
        "images",
    ),
    case("demo-images-1", [*DEMO, "--images", "1"], "images"),
    case("demo-images-0", [*DEMO, "--images", "0"], "images"),
    case("demo-images-minus-5", [*DEMO, "--images", "-5"], "images"),
    case("demo-size-100000x100000", [*DEMO, "--size", "100000x100000"], "size"),
    case("demo-size-10x10", [*DEMO, "--size", "10x10"], "size"),
    case("demo-size-big", [*DEMO, "--size", "big"], "WIDTHxHEIGHT"),
    case("demo-seed-minus-1", [*DEMO, "--seed", "-1"], "seed"),
    case("demo-variant-unknown", [*DEMO, "--variant", "huge"], "unknown demo variant"),
    case("demo-variant-and-size", [*DEMO, "--variant", "loader-bound", "--size", "640x480"], "give one"),
    case(
        "resize-imgsz-13",
        [*RESIZE, "--imgsz", "13"],
        "imgsz",
    ),
    case("resize-imgsz-0", [*RESIZE, "--imgsz", "0"], "imgsz"),
    case("resize-imgsz-minus-5", [*RESIZE, "--imgsz", "-5"], "imgsz"),
    case("resize-quality-0", [*RESIZE, "--imgsz", "32", "--quality", "0"], "quality"),
    case("resize-quality-101", [*RESIZE, "--imgsz", "32", "--quality", "101"], "quality"),
    case("resize-processes-0", [*RESIZE, "--imgsz", "32", "--processes", "0"], "processes"),
    case("resize-processes-minus-1", [*RESIZE, "--imgsz", "32", "--processes", "-1"], "processes"),
    case("resize-measure-batch-0", [*RESIZE, "--imgsz", "32", "--measure", "--batch", "0"], "batch"),
    case("resize-measure-iters-0", [*RESIZE, "--imgsz", "32", "--measure", "--iters", "0"], "iters"),
    case("report-epochs-0", ["report", "--epochs", "0"], "epochs must be"),
    case("report-repeats-0", ["report", "--repeats", "0"], "repeats must be"),
    case("profile-worker-list-x", [*PROFILE, "--worker-list", "x"], "--worker-list"),
    case("profile-worker-list-minus-1", [*PROFILE, "--worker-list", "-1"], "--worker-list"),
    case("profile-worker-list-empty", [*PROFILE, "--worker-list", ""], "--worker-list"),
    case("profile-batch-0", [*PROFILE, "--batch", "0"], "batch must be"),
    case("profile-iters-0", [*PROFILE, "--iters", "0"], "iters must be"),
]

ENUM_CASES = [
    case("probe-cache-ssd", [*PROBE, "--cache", "ssd"], "cache must be"),
    case(
        "probe-source-zipped",
        [*PROBE, "--source", "zipped"],
        "source must be",
    ),
    case("probe-device-gpu", [*PROBE[:-2], "--device", "gpu"], "device must be"),
    case("probe-device-minus-1", [*PROBE[:-2], "--device", "-1"], "device must be"),
    case(
        "probe-device-7",
        [*PROBE[:-2], "--device", "7"],
        "device",
    ),
    case("probe-optimizer-lion", [*PROBE, "--optimizer", "Lion"], "optimizer"),
    case("probe-page-cache-hot", [*PROBE, "--page-cache", "hot"], "page-cache"),
    case("profile-cache-ssd", [*PROFILE, "--cache", "ssd"], "cache must be"),
    case("report-format-pdf", ["report", "--format", "pdf"], "--format takes"),
    case("report-format-md-pdf", ["report", "--format", "md,pdf"], "--format takes"),
    case("report-format-empty", ["report", "--format", ""], "--format takes"),
    case("search-cache-ram-ssd", [*SEARCH, "--cache", "ram,ssd"], "cache must be"),
    case("search-imgsz-a-b", [*SEARCH, "--imgsz", "a,b"], "cannot read imgsz"),
    case("search-batch-8-dash", [*SEARCH, "--batch", "8-"], "cannot read batch"),
    case("search-workers-x", [*SEARCH, "--workers", "x"], "cannot read workers"),
    case("search-source-zipped", [*SEARCH, "--source", "zipped"], "source must be"),
    case("search-device-gpu", [*SEARCH[:-2], "--device", "gpu"], "device must be"),
    case(
        "search-device-7",
        [*SEARCH[:-2], "--device", "7"],
        "device",
    ),
    case("search-baseline-cache-ssd", [*SEARCH, "--baseline", "cache=ssd"], "cache must be"),
    case("search-try-cache-ssd", [*SEARCH, "--try", "cache=ssd"], "cache must be"),
    case("search-baseline-speed", [*SEARCH, "--baseline", "speed=9"], "--baseline takes"),
]


def storage_cases(cmd: str, base: list[str]) -> list[Any]:
    urls = [
        ("mysql-no-driver", f"mysql+nodriver://u:{SECRET}@h/db", None),
        ("ftp", "ftp://x", None),
        ("not-a-url", "not a url", None),
        ("sqlite-missing-dir", "sqlite:////nonexistent/dir/x.db", None),
        ("pg-empty-user", f"postgresql://:{SECRET}@127.0.0.1:1/db", None),
        ("pg-query-password", f"postgresql://u@127.0.0.1:1/db?password={SECRET}", None),
        ("pg-escaped-password", "postgresql://u:p%40ss@127.0.0.1:1/db", None),
    ]
    out = []
    for name, url, fail in urls:
        secrets = ("p%40ss", "p@ss") if "%40" in url else (SECRET,) if SECRET in url else ()
        out.append(case(f"{cmd}-storage-{name}", [*base, "--storage", url], "storage", secrets=secrets, fail=fail))
    return out


NO_CACHE = "no cache folder yet: 'cannot open storage sqlite:///.../cache/studies.db: unable to open database file'"
STUDY_NAMES = [("dotdot", "../../outside/x"), ("absolute", "/abs/x"), ("300-chars", "s" * 300), ("space", "a b")]

STORAGE_CASES = [
    *storage_cases("search", SEARCH),
    *storage_cases("report", ["report"]),
    *storage_cases("train", ["train", "--best"]),
]

STUDY_CASES = [
    *[case(f"search-study-{n}", [*SEARCH, "--study", s], "study name") for n, s in STUDY_NAMES],
    case("search-study-empty", [*SEARCH, "--study", ""], "study name"),
    *[case(f"report-study-{n}", ["report", "--study", s], "study name", storage="finished") for n, s in STUDY_NAMES],
    case(
        "report-study-empty",
        ["report", "--study", ""],
        "study name",
        storage="finished",
    ),
    *[case(f"train-study-{n}", ["train", "--study", s], "study name", storage="finished") for n, s in STUDY_NAMES],
    case(
        "train-study-empty",
        ["train", "--study", ""],
        "study name",
        storage="finished",
    ),
    case("report-no-study-yet", ["report"], "no study yet", no_db=True),
    case("report-json-no-study-yet", ["report", "--json"], "no study yet", no_db=True),
    case("report-named-study-none-yet", ["report", "--study", "x"], "no study yet", no_db=True),
    case("train-best-no-study-yet", ["train", "--best"], "no study yet", no_db=True),
    case(
        "train-named-study-none-yet",
        ["train", "--study", "x"],
        "no study",
        no_db=True,
    ),
    case("train-best-foreign-study-only", ["train", "--best"], "no autotune study", storage="foreign"),
    case("report-study-unknown", ["report", "--study", "nope"], "no study named", storage="finished"),
    # a machine autotune never ran on: no cache folder yet
    case("fresh-report-no-study-yet", ["report"], "no study yet", no_db=True, fresh=True),
    case("fresh-train-best-no-study-yet", ["train", "--best"], "no study yet", no_db=True, fresh=True),
    case("fresh-train-profile-missing", ["train", "--profile", "{in}/missing.yaml"], "not found", fresh=True),
    case("fresh-search-study-space", [*SEARCH, "--study", "a b"], "study name", fresh=True),
    case("fresh-search-batch-1-to-1e9", [*SEARCH, "--batch", "1-1000000000"], "batch", fresh=True),
]

TRAIN_CASES = [
    case("train-best-and-profile", ["train", "--best", "--profile", "{in}/p.yaml"], "not both", profile_file()),
    case("train-nothing-to-train", ["train"], "say what to train"),
    case("train-profile-missing", ["train", "--profile", "{in}/missing.yaml"], "not found"),
    case(
        "train-profile-yaml-list",
        ["train", "--profile", "{in}/p.yaml"],
        "not an autotune profile",
        profile_file("- a\n- b\n"),
    ),
    case(
        "train-profile-malformed",
        ["train", "--profile", "{in}/p.yaml"],
        "not valid YAML",
        profile_file("model: [oops\n"),
    ),
    case(
        "train-profile-no-model",
        ["train", "--profile", "{in}/p.yaml"],
        "not an autotune profile",
        profile_file("data: {data}\n"),
    ),
    case(
        "train-profile-batch-not-a-number",
        ["train", "--profile", "{in}/p.yaml"],
        "cannot read its settings",
        profile_file(PROFILE_YAML.replace("batch: 2", "batch: many")),
    ),
    case(
        "train-profile-data-missing",
        ["train", "--profile", "{in}/p.yaml"],
        "not found",
        profile_file(PROFILE_YAML.replace("data: {data}", "data: {in}/missing.yaml")),
    ),
    case(
        "train-profile-sidecar-not-json",
        ["train", "--profile", "{in}/p.yaml"],
        "p.json",
        profile_file(sidecar="{not json"),
    ),
    case(
        "train-profile-sidecar-json-list",
        ["train", "--profile", "{in}/p.yaml"],
        "p.json",
        profile_file(sidecar="[1, 2]"),
    ),
    case("train-unknown-key", ["train", "--best", "foo=1"], "not an Ultralytics setting"),
    case("train-batch-pass-through", ["train", "--best", "batch=64"], "cannot be changed"),
    case("train-positional-word", ["train", "--best", "extra"], "cannot read 'extra'"),
    case("train-unknown-option", ["train", "--best", "--bogus"], "no such option"),
    case("train-resume-with-options", ["train", "--best", "--resume", "--epochs", "5"], "--resume"),
    case("train-epochs-0", ["train", "--profile", "{in}/p.yaml", "--epochs", "0"], "epochs must be", profile_file()),
    case(
        "train-patience-minus-1", ["train", "--profile", "{in}/p.yaml", "--patience", "-1"], "patience", profile_file()
    ),
    case(
        "train-close-mosaic-minus-1",
        ["train", "--profile", "{in}/p.yaml", "--close-mosaic", "-1"],
        "close-mosaic",
        profile_file(),
    ),
    case(
        "train-optimizer-lion",
        ["train", "--profile", "{in}/p.yaml", "--optimizer", "Lion"],
        "optimizer",
        profile_file(),
    ),
    case("train-lr0-not-a-number", ["train", "--profile", "{in}/p.yaml", "lr0=abc"], "lr0", profile_file()),
]

OUT_CASES = [
    case(
        "profile-out-is-a-file",
        [*PROFILE, "--out", "{in}/file.txt"],
        "not a folder",
        a_file,
    ),
    case(
        "report-out-is-a-file",
        ["report", "--out", "{in}/file.txt"],
        "not a folder",
        a_file,
        storage="finished",
    ),
    case(
        "report-out-under-a-file",
        ["report", "--out", "{in}/file.txt/sub"],
        "folder",
        a_file,
        storage="finished",
    ),
    case("resize-out-is-a-file", [*RESIZE, "--imgsz", "32", "--out", "{in}/file.txt"], "not a folder", a_file),
    case(
        "resize-out-under-a-file",
        [*RESIZE, "--imgsz", "32", "--out", "{in}/file.txt/sub"],
        "folder",
        a_file,
    ),
    case("demo-out-is-a-file", ["demo-data", "--out", "{in}/file.txt"], "not a folder", a_file),
    # a bad value with an --out inside the case's folder: the folder must not be created
    case("profile-bad-batch-out-not-made", [*PROFILE, "--out", "{tmp}/prof", "--batch", "0"], "batch must be"),
    case(
        "report-bad-format-out-not-made",
        ["report", "--out", "{tmp}/rep", "--format", "pdf"],
        "--format takes",
        storage="finished",
    ),
    case(
        "resize-bad-quality-out-not-made",
        [*RESIZE, "--imgsz", "32", "--out", "{tmp}/copy", "--quality", "0"],
        "quality",
    ),
    case(
        "demo-out-under-a-file",
        ["demo-data", "--out", "{in}/file.txt/sub"],
        "folder",
        a_file,
    ),
]

# expected: the option, value or word at fault
USAGE_CASES = [
    case("probe-unknown-option", [*PROBE, "--bogus"], "no such option: --bogus"),
    case("report-unknown-option", ["report", "--bogus"], "no such option: --bogus"),
    case("resize-without-imgsz", ["resize", "--data", "{data}"], "missing option '--imgsz'"),
    case("probe-extra-argument", [*PROBE, "extra"], "extra"),
    case("resize-extra-argument", [*RESIZE, "--imgsz", "32", "extra"], "extra"),
    case("probe-batch-not-a-number", [*PROBE, "--batch", "x"], "--batch"),
    case("probe-timeout-not-a-number", [*PROBE, "--timeout", "abc"], "--timeout"),
    case("demo-images-not-a-number", ["demo-data", "--images", "many"], "--images"),
    case("search-budget-without-value", ["search", "--budget"], "--budget"),
    case("unknown-command", ["frobnicate"], "no such command 'frobnicate'"),
]

CASES = [
    *DATA_CASES,
    *MODEL_CASES,
    *NUMBER_CASES,
    *ENUM_CASES,
    *STORAGE_CASES,
    *STUDY_CASES,
    *TRAIN_CASES,
    *OUT_CASES,
    *USAGE_CASES,
]


def test_enough_distinct_cases() -> None:
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids))
    plain = [(p.values[0].args, p.values[0].storage, p.values[0].fresh) for p in CASES if p.values[0].setup is None]
    assert len(plain) == len(set(plain))  # cases without inputs of their own differ in arguments or storage
    assert len(CASES) >= 130


@pytest.mark.parametrize("c", CASES)
def test_bad_input(c: Case, ctx: Ctx) -> None:
    if c.setup is not None:
        c.setup(ctx)
    if not c.fresh:
        (ctx.tmp / "cache").mkdir()
    if c.storage is not None:
        shutil.copy(ctx.studies[c.storage], ctx.tmp / "cache" / "studies.db")
    args = [ctx.fill(x) for x in c.args]
    before, dataset_before = tree(ctx.tmp), tree(ctx.data.parent.parent)
    out = run_cli(args)
    written = [x for x in changes(before, tree(ctx.tmp)) if not _owned(x)]
    dataset_changed = changes(dataset_before, tree(ctx.data.parent.parent))
    found = problems(c, ctx, out, written, dataset_changed)
    assert not found, f"autotune {' '.join(args)}: " + "; ".join(found)


FRESH_PROCESS = [
    pytest.param(["probe", "--data", "{data}", "--device", "cpu", "--batch", "0"], "batch must be", id="batch-0"),
    pytest.param(
        ["probe", "--data", "{data}", "--device", "cpu", "--model", "yolo99z.yaml"],
        "unknown model",
        id="model-unknown",
    ),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("args", "expected"), FRESH_PROCESS)
def test_bad_input_in_a_fresh_process(args: list[str], expected: str, world: dict[str, Any], tmp_path: Path) -> None:
    """The real entry point in a new process, on a machine where Ultralytics has no settings file yet (what an
    in-process run cannot see: third-party imports happen once per process)."""
    env = {k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}
    env.update(
        AUTOTUNE_CACHE=str(tmp_path / "cache"),
        HOME=str(tmp_path / "home"),
        YOLO_CONFIG_DIR=str(tmp_path / "ultra"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), env.get("PYTHONPATH")])),
    )
    args = [x.replace("{data}", str(world["data"])) for x in args]
    r = subprocess.run(
        [sys.executable, "-m", "autotune", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100
    )
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert len(lines) == 1 and lines[0].startswith("autotune: error:") and expected in lines[0], lines
    assert [x for x in changes({}, tree(tmp_path)) if not _owned(x)] == []
