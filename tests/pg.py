"""A throwaway PostgreSQL server for tests, started from Debian's server binaries (package `postgresql`).

Use the session fixture from a test module:

    from pg import postgres_server  # noqa: F401

    def test_x(postgres_server):
        optuna.create_study(storage=postgres_server.url, ...)

The server lives in a fresh temporary folder, listens on 127.0.0.1 only (on a free port) plus a unix socket
inside that folder, requires a password over TCP (scram-sha-256), and is stopped and deleted afterwards.
initdb and postgres refuse to run as root, so as root they run as Debian's `postgres` system user.
This module imports without psycopg and without PostgreSQL installed: the fixture skips (fails under CI=true).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest

USER = "autotune"
PASSWORD = "s3cret-Pa55"
DATABASE = "autotune"
MISSING_BINARIES = "PostgreSQL server binaries not found (apt-get install postgresql); the distributed test needs them"
MISSING_DRIVER = "psycopg cannot be imported (pip install 'psycopg[binary]'); the distributed test needs it"
SERVER_SETTINGS = {
    # Throwaway data: durability off makes startup and commits fast.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
    "max_connections": "50",
}


def find_pg_bin() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        # Debian's pg_config may come from libpq-dev alone, naming a folder without the server: check it.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(Path(out.stdout.strip()))

    def version(p: str) -> tuple[int, ...]:
        name = Path(p).parent.name
        return tuple(int(x) for x in name.split(".") if x.isdigit()) or (0,)

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    for d in candidates:
        if all(os.access(d / exe, os.X_OK) for exe in ("initdb", "pg_ctl", "postgres", "psql")):
            return d
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(lines[-n:]) or "(server log empty)"


class PostgresStartupError(RuntimeError):
    pass


class ThrowawayPostgres:
    """initdb + pg_ctl start in a fresh temp dir; role and database `autotune`; stopped and deleted on exit."""

    def __init__(self, bin_dir: Path | None = None, timeout: int = 30):
        self.bin_dir = bin_dir
        self.timeout = timeout
        self.password = PASSWORD
        self.user = USER
        self.database = DATABASE
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.tmp: Path | None = None
        self.startup_seconds: float | None = None
        self._as_postgres = os.geteuid() == 0
        self._running = False

    # -- paths and the URL ------------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "sock"

    @property
    def log_file(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "server.log"

    def url_with(self, password: str) -> str:
        return f"postgresql://{self.user}:{quote(password, safe='')}@{self.host}:{self.port}/{self.database}"

    @property
    def url(self) -> str:
        return self.url_with(self.password)

    # -- running the server's commands --------------------------------------------------------------------------

    def _run(self, args: list[str], what: str) -> subprocess.CompletedProcess:
        assert self.bin_dir is not None and self.tmp is not None
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        # No PG* variables from the caller's environment (PGHOST, PGPORT, PGDATA...) leak into the commands.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        try:
            res = subprocess.run(
                cmd, cwd=self.tmp, env=env, capture_output=True, text=True, timeout=self.timeout + 30, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise PostgresStartupError(f"{what}: timed out after {e.timeout:.0f} s: {' '.join(cmd)}") from e
        if res.returncode != 0:
            raise PostgresStartupError(
                f"{what} failed (exit {res.returncode}): {' '.join(cmd)}\n"
                f"{(res.stdout + res.stderr).strip()}\n--- server log ({self.log_file}), last lines ---\n"
                f"{_tail(self.log_file)}"
            )
        return res

    def _make_tmp(self) -> Path:
        if not self._as_postgres:
            # A short path: the unix socket's full path must stay under ~100 characters.
            return Path(tempfile.mkdtemp(prefix="autotune-pg-", dir="/tmp" if os.path.isdir("/tmp") else None))
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresStartupError(
                "running as root, and initdb/postgres refuse to run as root, but there is no 'postgres' system user "
                "to run them as (Debian's postgresql package creates it)"
            ) from None
        if not shutil.which("runuser"):
            raise PostgresStartupError("running as root needs `runuser` (util-linux) to start PostgreSQL as 'postgres'")
        # Under /tmp (world-traversable) rather than $TMPDIR, which may sit in a folder 'postgres' cannot enter.
        tmp = Path(tempfile.mkdtemp(prefix="autotune-pg-", dir="/tmp"))
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.chmod(tmp, 0o700)
        return tmp

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> ThrowawayPostgres:
        t0 = time.monotonic()
        self.bin_dir = self.bin_dir or find_pg_bin()
        if self.bin_dir is None:
            raise PostgresStartupError(MISSING_BINARIES)
        self.tmp = self._make_tmp()
        atexit.register(self.stop)  # a safety net if the context manager's exit never runs
        try:
            self._init()
            for attempt in range(3):  # the free port can be taken between choosing it and binding it
                self.port = _free_port()
                self._configure()
                try:
                    self._run(
                        [
                            "pg_ctl",
                            "-D",
                            str(self.data_dir),
                            "-l",
                            str(self.log_file),
                            "-w",
                            "-t",
                            str(self.timeout),
                            "start",
                        ],
                        "pg_ctl start",
                    )
                    break
                except PostgresStartupError:
                    if attempt < 2 and "already in use" in _tail(self.log_file, 10):
                        continue
                    raise
            self._running = True
            self._psql(
                f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'",
                f"CREATE DATABASE {self.database} OWNER {self.user}",
            )
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _init(self) -> None:
        assert self.tmp is not None
        self._run(
            [
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
            "initdb",
        )
        hba = (
            "# written by tests/pg.py: the unix socket trusts, TCP needs the password\n"
            "local all all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        self._write_as_server(self.data_dir / "pg_hba.conf", hba)
        self._mkdir_as_server(self.socket_dir)

    def _configure(self) -> None:
        settings = {
            **SERVER_SETTINGS,
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "password_encryption": "'scram-sha-256'",
        }
        # postgresql.auto.conf is read after postgresql.conf, so its values win; rewritten on each port retry.
        text = "".join(f"{k} = {v}\n" for k, v in settings.items())
        self._write_as_server(self.data_dir / "postgresql.auto.conf", text)

    def _write_as_server(self, path: Path, text: str) -> None:
        path.write_text(text)  # root may write anywhere; a non-root user owns the folder anyway
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, 0o600)

    def _mkdir_as_server(self, path: Path) -> None:
        path.mkdir(mode=0o700)
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _psql(self, *statements: str) -> None:
        args = [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ]
        for s in statements:  # each -c runs in its own transaction (CREATE DATABASE cannot run inside one)
            args += ["-c", s]
        self._run(args, "creating the role and database")

    def stop(self) -> None:
        """`pg_ctl stop -m immediate`, then delete the temp dir. Safe to call twice."""
        atexit.unregister(self.stop)
        if self.tmp is None:
            return
        pid = self._postmaster_pid()
        if self._running or pid is not None:
            with contextlib.suppress(PostgresStartupError):
                self._run(
                    ["pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "10", "stop"], "pg_ctl stop"
                )
            self._running = False
            if pid is not None and _alive(pid):  # pg_ctl failed: end the postmaster we started, by its id
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI=true: CI installs PostgreSQL and the driver, so a miss there is a bug."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server():
    """A running ThrowawayPostgres (see the module's docstring), shared by the session."""
    if find_pg_bin() is None:
        _unavailable(MISSING_BINARIES)
    try:
        import psycopg  # noqa: F401
    except ImportError as e:
        missing_driver = f"{MISSING_DRIVER}: {e}"
    else:
        missing_driver = None
    if missing_driver:
        _unavailable(missing_driver)
    with ThrowawayPostgres() as server:
        yield server
