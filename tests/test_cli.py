"""The `jaxlqo` command line: user errors are one line and exit code 2, checked before the run."""

import re

import pytest

from jaxlqo.cli import main


def _run(argv, capsys):
    try:
        code = main(["compress", *argv])
    except SystemExit as e:  # argparse's own errors exit directly
        code = e.code
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ranks", "abc"], "--ranks"),
        (["--ranks", "0"], "--ranks"),
        (["--ranks", "-1"], "--ranks"),
        (["--ranks", "1000"], "--ranks"),
        (["--ranks", ","], "--ranks"),
        (["--ranks", "4,4"], "duplicate"),
        (["--budgets", "1"], "--budgets"),
        (["--methods", ","], "--methods"),
        (["--methods", "bt,bt"], "duplicate"),
        (["--methods", "nope"], "unknown"),
        (["--test-limit", "0"], "--test-limit"),
        (["--calibration", "0"], "--calibration"),
        (["--calibration", "-1"], "--calibration"),
        (["--max-steps", "-1"], "--max-steps"),
        (["--model", "/no/such/checkpoint"], "--model"),
        (["--json", "/no/such/folder/table.json"], "--json"),
        (["--out", "/proc/jaxlqo-cannot-write-here"], "--out"),
    ],
)
def test_user_errors_are_one_line(argv, message, capsys):
    # --no-plot (except where --out is the point): no output folder is created by the test.
    plot = [] if "--out" in argv else ["--no-plot"]
    code, err = _run([*argv, "--no-cache", *plot], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("jaxlqo compress: error:") and message in err


def test_help_lists_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as e:
        main(["compress", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--ranks",
        "--budgets",
        "--methods",
        "--calibration",
        "--max-steps",
        "--no-bound",
        "--json",
        "--out",
        "--test-limit",
        "--blas-threads",
    ):
        assert option in text
    assert "(default: 512" in text and "(default: 90)" in text
    assert "(default: None)" not in text  # those options say what they default to


def test_cpu_fingerprint_names_one_cache_folder_per_cpu_kind(monkeypatch):
    from jaxlqo import cli

    name = cli._cpu_fingerprint()
    assert re.fullmatch(r"[\w.-]+-[0-9a-f]{12}", name) and name == cli._cpu_fingerprint()
    # Another instruction set is another folder.
    monkeypatch.setattr("platform.processor", lambda: "some-other-cpu")
    assert cli._cpu_fingerprint() != name
