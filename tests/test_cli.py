"""Bad input through the CLI: exit code 2 and one clear line on stderr, never a traceback."""

import pytest
from conftest import make_dataset
from typer.testing import CliRunner

from autotune.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("cli") / "ds")


def _bad(args: list[str], expected: str):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("autotune: error:")
    assert expected in lines[0]
    return result


def test_missing_data_yaml(tmp_path):
    _bad(["probe", "--data", str(tmp_path / "missing.yaml")], "not found")


def test_malformed_data_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [oops\n")
    _bad(["probe", "--data", str(bad)], "not valid YAML")


def test_train_path_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    y = tmp_path / "d.yaml"
    y.write_text(f"train: {tmp_path / 'empty'}\nval: {tmp_path / 'empty'}\nnames: [a]\n")
    _bad(["probe", "--data", str(y)], "no images found")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "yolo99z.yaml"], "unknown model"),
        (["--model", "yolo11n.pt"], "never downloads"),
        (["--batch", "0"], "batch must be"),
        (["--imgsz", "16"], "imgsz must be"),
        (["--workers", "-1"], "workers must be"),
        (["--cache", "ssd"], "cache must be one of"),
        (["--iters", "0"], "iters must be"),
        (["--epochs", "0"], "epochs must be"),
        (["--memory-limit", "lots"], "memory limit"),
        (["--device", "gpu"], "device must be"),
        (["--page-cache", "hot"], "page-cache"),
    ],
)
def test_bad_probe_options(data, args, expected):
    _bad(["probe", "--data", str(data), *args], expected)


def test_demo_data_bad_size(tmp_path):
    _bad(["demo-data", "--out", str(tmp_path / "d"), "--size", "big"], "WIDTHxHEIGHT")
    _bad(["demo-data", "--out", str(tmp_path / "d"), "--images", "1"], "images")


def test_unknown_option_is_a_usage_error():
    _bad(["probe", "--bogus"], "no such option: --bogus")  # one line, like every other bad input


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--budget", "abc"], "cannot read duration"),
        (["--budget", "0"], "more than zero"),
        (["--budget", "-5min"], "cannot read duration"),
        (["--storage", "nonsense://x"], "not an Optuna RDB URL"),
        (["--storage", "postgresql://bob:hunter2@127.0.0.1:9/db"], "cannot open storage"),
        (["--imgsz", "100"], "multiples of 32"),
        (["--cache", "ssd"], "cache must be"),
        (["--batch", "0-4"], "batch range"),
        (["--vram-limit", "lots"], "memory limit"),
        (["--vram-limit", "10MiB"], "nothing fits"),
        (["--baseline", "speed=9"], "--baseline takes"),
        (["--try", "batch=500"], "outside the search space"),
        (["--try", "batch=many"], "cannot read --try"),
        (["--target-epoch", "soon"], "cannot read duration"),
    ],
)
def test_bad_search_options(data, args, expected):
    result = _bad(["search", "--data", str(data), "--device", "cpu", *args], expected)
    assert "hunter2" not in result.output  # a storage password is never printed


@pytest.fixture()
def studies(tmp_path, monkeypatch):
    """A storage with an empty study and one whose only trials ran out of memory."""
    import optuna
    from fakes import FakeClock, FakeProbe
    from test_search import make_search

    from autotune.search import store

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = optuna.storages.RDBStorage(url)
    optuna.create_study(study_name="foreign", storage=storage)  # a study autotune did not make
    st = store.create(storage, "empty", None, None)  # an autotune study before its first trial
    clock = FakeClock()
    st.write_meta(make_search(optuna.storages.InMemoryStorage(), clock, FakeProbe(clock)).meta())
    search = make_search(storage, clock, FakeProbe(clock, seconds=10, oom_above=1), budget_s=60)
    search.run()  # study "test": baseline and trials all out of memory
    monkeypatch.setenv("AUTOTUNE_CACHE", str(tmp_path / "cache"))
    return url


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--study", "nope"], "no study named 'nope'"),
        (["--study", "empty"], "no finished trial"),
        (["--study", "foreign"], "was not made by `autotune search`"),
        (["--study", "../x"], "study name '../x' is not allowed"),
        (["--study", "test"], "no feasible trial"),
        (["--study", "test", "--format", "pdf"], "--format takes"),
        (["--study", "test", "--epochs", "0"], "epochs must be"),
    ],
)
def test_bad_report_input(studies, args, expected):
    _bad(["report", "--storage", studies, *args], expected)


def test_report_before_any_search(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOTUNE_CACHE", str(tmp_path))
    _bad(["report"], "run `autotune search` first")
