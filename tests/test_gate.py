import json
from pathlib import Path

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from tests.conftest import load_script

gate = load_script(".ci/gate.py")
app = typer.Typer()
app.command()(gate.main)

EVALUATE = {
    "attributes": {
        "Smiling": {"swap_accuracy": 0.9, "name": "smile"},
        "Male": {"swap_accuracy": 0.95, "flags": [1, 2]},
    },
    "reconstruction": {"mse": 0.004},
    "fid": None,
    "converged": True,
}
TRAIN = {"epochs": 10, "test_accuracy": {"mean": 0.99}}
RULES = """\
rules:
  - metric: "evaluate.json:attributes.*.swap_accuracy"
    direction: higher
    max_worsening: 0.05
    min: 0.5
  - metric: "evaluate.json:reconstruction.mse"
    direction: lower
    max_worsening: 0.25
    max: 0.02
"""


def write_metrics(folder: Path, **files: dict) -> Path:
    """A metrics folder holding `<name>.json` for each keyword."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / f"{name}.json").write_text(json.dumps(content))
    return folder


def worsened(**changes: float) -> dict:
    """EVALUATE with some swap accuracies (by attribute) or "mse" replaced."""
    attributes = {
        name: {**values, "swap_accuracy": changes.get(name, values["swap_accuracy"])}
        for name, values in EVALUATE["attributes"].items()
    }
    mse = changes.get("mse", EVALUATE["reconstruction"]["mse"])
    return {**EVALUATE, "attributes": attributes, "reconstruction": {"mse": mse}}


def rules_of(text: str, tmp_path: Path) -> list[gate.Rule]:
    """The rules of `text`, read through the stage's loader from tmp_path/gate.yaml."""
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    return gate.read_rules(path)


def judge(tmp_path: Path, run: dict, rules: str = RULES) -> dict[str, gate.Row]:
    """Rows by metric name, for `run` as evaluate.json against EVALUATE as the baseline."""
    current = {f"evaluate.json:{k}": v for k, v in gate.numeric_leaves(run).items()}
    baseline = {f"evaluate.json:{k}": v for k, v in gate.numeric_leaves(EVALUATE).items()}
    return {row.metric: row for row in gate.compare(current, baseline, rules_of(rules, tmp_path))}


def statuses(rows: dict[str, gate.Row]) -> dict[str, str]:
    """Status by dotted key (the file name dropped)."""
    return {name.rpartition(":")[2]: row.status for name, row in rows.items()}


def test_read_metrics_flattens_numeric_leaves(tmp_path: Path) -> None:
    folder = write_metrics(tmp_path / "m", evaluate=EVALUATE, train=TRAIN)
    (folder / "curve.json").write_text("[[0, 0.5], [1, 0.9]]")  # plot rows: no metrics
    (folder / "notes.txt").write_text("{}")
    (folder / "nested").mkdir()
    write_metrics(folder / "nested", deep={"x": 1.0})
    assert gate.read_metrics(folder) == {
        "evaluate.json:attributes.Smiling.swap_accuracy": 0.9,
        "evaluate.json:attributes.Male.swap_accuracy": 0.95,
        "evaluate.json:reconstruction.mse": 0.004,
        "train.json:epochs": 10.0,
        "train.json:test_accuracy.mean": 0.99,
    }


def test_read_metrics_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="metrics folder not found"):
        gate.read_metrics(tmp_path / "absent")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        gate.read_metrics(tmp_path)


def test_identical_metrics_pass(tmp_path: Path) -> None:
    rows = judge(tmp_path, EVALUATE)
    assert statuses(rows) == {
        "attributes.Male.swap_accuracy": "PASS",
        "attributes.Smiling.swap_accuracy": "PASS",
        "reconstruction.mse": "PASS",
    }
    assert all(row.change == 0 and row.reason == "" for row in rows.values())
    assert gate.passed(list(rows.values()))


def test_worsening_beyond_tolerance_fails_both_directions(tmp_path: Path) -> None:
    rows = judge(tmp_path, worsened(Smiling=0.8, mse=0.006))  # -11 % accuracy, +50 % mse
    assert statuses(rows)["attributes.Smiling.swap_accuracy"] == "FAIL"
    assert statuses(rows)["reconstruction.mse"] == "FAIL"
    assert statuses(rows)["attributes.Male.swap_accuracy"] == "PASS"
    smiling = rows["evaluate.json:attributes.Smiling.swap_accuracy"]
    assert smiling.change == pytest.approx(-100 / 9)
    assert "worse by 0.1 (allowed 0.045)" in smiling.reason
    assert not gate.passed(list(rows.values()))


def test_within_tolerance_and_improvements_pass(tmp_path: Path) -> None:
    # exactly -5 % and +25 % sit on the limits; a lower mse and a higher accuracy are better
    assert set(statuses(judge(tmp_path, worsened(Smiling=0.855, mse=0.005))).values()) == {"PASS"}
    assert set(statuses(judge(tmp_path, worsened(Smiling=1.0, mse=0.0001))).values()) == {"PASS"}


def test_missing_metric_and_missing_file_fail(tmp_path: Path) -> None:
    run = worsened()
    del run["attributes"]["Male"]
    rows = judge(tmp_path, run)
    male = rows["evaluate.json:attributes.Male.swap_accuracy"]
    assert (male.status, male.current, male.reason) == ("MISSING", None, "not in run")

    baseline = write_metrics(tmp_path / "base", evaluate=EVALUATE)
    run_dir = write_metrics(tmp_path / "run", train=TRAIN)
    rows = gate.compare(
        gate.read_metrics(run_dir), gate.read_metrics(baseline), rules_of(RULES, tmp_path)
    )
    assert {row.status for row in rows} == {"MISSING"}
    assert {row.reason for row in rows} == {"evaluate.json missing from run"}
    assert not gate.passed(rows)


def test_non_numeric_run_value_counts_as_missing(tmp_path: Path) -> None:
    rows = judge(tmp_path, {**EVALUATE, "reconstruction": {"mse": "n/a"}})
    assert statuses(rows)["reconstruction.mse"] == "MISSING"


def test_nan_in_run_fails(tmp_path: Path) -> None:
    rows = judge(tmp_path, worsened(mse=float("nan")))
    assert rows["evaluate.json:reconstruction.mse"].status == "FAIL"
    assert rows["evaluate.json:reconstruction.mse"].reason == "run value is nan"


def test_absolute_bounds(tmp_path: Path) -> None:
    rules = RULES.replace("min: 0.5", "min: 0.92").replace("0.25", "9")
    rows = judge(tmp_path, worsened(mse=0.03), rules)  # within +900 %, but above max 0.02
    assert rows["evaluate.json:reconstruction.mse"].reason == "above max 0.02"
    rows = judge(tmp_path, EVALUATE, rules)  # the baseline itself is below the new min
    smiling = rows["evaluate.json:attributes.Smiling.swap_accuracy"]
    assert (smiling.status, smiling.reason) == ("FAIL", "below min 0.92")
    assert statuses(rows)["attributes.Male.swap_accuracy"] == "PASS"


def test_abs_tolerance_allows_moves_from_zero(tmp_path: Path) -> None:
    current = {"m.json:loss": 0.003}
    baseline = {"m.json:loss": 0.0}
    strict = rules_of(
        'rules: [{metric: "m.json:loss", direction: lower, max_worsening: 0.5}]', tmp_path
    )
    [row] = gate.compare(current, baseline, strict)
    assert (row.status, row.change) == ("FAIL", None)  # 50 % of 0 is 0
    loose = rules_of(
        "rules: [{metric: 'm.json:loss', direction: lower, max_worsening: 0.5,"
        " abs_tolerance: 0.005}]",
        tmp_path,
    )
    assert gate.passed(gate.compare(current, baseline, loose))
    assert not gate.passed(gate.compare({"m.json:loss": 0.006}, baseline, loose))


def test_first_matching_rule_wins_and_unmatched_metrics_are_ignored(tmp_path: Path) -> None:
    rules = """\
rules:
  - {metric: "evaluate.json:attributes.Smiling.*", direction: higher, max_worsening: 0.5}
  - {metric: "evaluate.json:attributes.*", direction: higher}
"""
    rows = judge(tmp_path, worsened(Smiling=0.6, Male=0.94, mse=1.0), rules)
    assert statuses(rows) == {
        "attributes.Male.swap_accuracy": "FAIL",
        "attributes.Smiling.swap_accuracy": "PASS",
    }
    assert rows["evaluate.json:attributes.Male.swap_accuracy"].limit == "no worsening"


def test_rule_matching_no_baseline_metric_is_an_error(tmp_path: Path) -> None:
    typo = RULES + '  - {metric: "evaluate.json:reconstruction.mae", direction: lower}\n'
    with pytest.raises(
        ValueError,
        match=r"rules\[2\] \('evaluate.json:reconstruction.mae'\) "
        "matches no baseline metric; baseline metrics: ",
    ):
        judge(tmp_path, EVALUATE, typo)
    hidden = RULES.replace("rules:\n", 'rules:\n  - {metric: "*", direction: higher}\n')
    with pytest.raises(ValueError, match=r"rules\[1\].*taken by an earlier rule"):
        judge(tmp_path, EVALUATE, hidden)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [", "malformed YAML"),
        ("- metric: x", "expected a mapping with the single key 'rules', got list"),
        ("rules: []\nthresholds: 1", r"single key 'rules', got \['rules', 'thresholds'\]"),
        ("rules: []", "'rules' must be a non-empty list"),
        ("rules: [x]", r"rules\[0\]: expected a mapping of keys, got str"),
        (
            "rules: [{metric: x, direction: higher, tolerance: 0.1}]",
            r"rules\[0\]: unknown key\(s\) \['tolerance'\]; valid keys: \['abs_tolerance', ",
        ),
        ("rules: [{metric: x}]", r"rules\[0\]: missing key\(s\) \['direction'\]"),
        (
            "rules: [{metric: x, direction: up}]",
            r"direction: Input should be 'higher' or 'lower' \(got 'up'\)",
        ),
        (
            "rules: [{metric: x, direction: lower, max_worsening: -0.1}]",
            r"max_worsening: Input should be greater than or equal to 0 \(got -0.1\)",
        ),
        (
            "rules: [{metric: x, direction: lower, abs_tolerance: '5%'}]",
            r"abs_tolerance: Input should be a valid number \(got '5%'\)",
        ),
        (
            "rules: [{metric: x, direction: lower, min: 2, max: 1}]",
            r"min \(2.0\) is above max \(1.0\)",
        ),
        ("rules: [{metric: '', direction: lower}]", "metric must be a non-empty pattern"),
    ],
)
def test_bad_rules_files_give_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        rules_of(text, tmp_path)
    assert str(error.value).startswith(str(tmp_path / "gate.yaml"))


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="rules file not found: .*absent.yaml"):
        gate.read_rules(tmp_path / "absent.yaml")


def test_format_table_is_fixed_width(tmp_path: Path) -> None:
    run = worsened(Smiling=0.8)
    del run["attributes"]["Male"]
    lines = gate.format_table(list(judge(tmp_path, run).values())).splitlines()
    assert lines[0].split() == [
        "metric",
        "baseline",
        "current",
        "change",
        "limit",
        "status",
        "reason",
    ]
    assert lines[1].split() == [
        "evaluate.json:attributes.Male.swap_accuracy",
        "0.95",
        "-",
        "-",
        "-5%,",
        "min",
        "0.5",
        "MISSING",
        "not",
        "in",
        "run",
    ]
    assert "-11.11%" in lines[2] and "FAIL" in lines[2]
    starts = {line.index(word) for line, word in zip(lines, ("status", "MISSING", "FAIL", "PASS"))}
    assert len(starts) == 1  # one column


def cli(tmp_path: Path, run: dict, *extra: str) -> tuple[Result, Path]:
    """`.ci/gate.py` with `run` as the run's evaluate.json and EVALUATE as the baseline."""
    write_metrics(tmp_path / "run", evaluate=run, train=TRAIN)
    baseline = write_metrics(tmp_path / "base", evaluate=EVALUATE)
    (tmp_path / "gate.yaml").write_text(RULES)
    args = [
        "--run",
        str(tmp_path / "run"),
        "--baseline",
        str(baseline),
        "--rules",
        str(tmp_path / "gate.yaml"),
        *extra,
    ]
    return CliRunner().invoke(app, args), baseline


def test_cli_passes(tmp_path: Path) -> None:
    result, _ = cli(tmp_path, worsened(Smiling=0.88))
    assert result.exit_code == 0, result.output
    assert "gate passed: 3 metrics within their rules" in result.output


def test_cli_fails_with_a_readable_table(tmp_path: Path) -> None:
    result, _ = cli(tmp_path, worsened(mse=0.01))
    assert result.exit_code == 1, result.output
    mse = next(line for line in result.output.splitlines() if "reconstruction.mse" in line)
    assert mse.split()[:6] == [
        "evaluate.json:reconstruction.mse",
        "0.004",
        "0.01",
        "+150.00%",
        "+25%,",
        "max",
    ]
    assert "FAIL" in mse and "worse by 0.006 (allowed 0.001)" in mse
    assert "gate FAILED: 1 of 3 metrics failed, 0 missing" in result.output


def test_cli_bad_rules_exit_2(tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").write_text("rules: [{metric: x, direction: sideways}]")
    write_metrics(tmp_path / "run", evaluate=EVALUATE)
    result = CliRunner().invoke(
        app,
        [
            "--run",
            str(tmp_path / "run"),
            "--baseline",
            str(tmp_path / "run"),
            "--rules",
            str(tmp_path / "gate.yaml"),
        ],
    )
    assert result.exit_code == 2
    assert "direction: Input should be 'higher' or 'lower' (got 'sideways')" in result.output


def test_cli_update_writes_the_baseline(tmp_path: Path) -> None:
    run = worsened(Smiling=0.6)
    result, baseline = cli(tmp_path, run, "--update")
    assert result.exit_code == 0, result.output
    assert json.loads((baseline / "evaluate.json").read_text()) == run
    assert not (baseline / "train.json").exists()  # no rule covers it
    assert "gate passed" in result.output
    assert sorted(p.name for p in baseline.iterdir()) == ["evaluate.json"]  # no temp files


def test_cli_update_refuses_a_run_outside_the_bounds(tmp_path: Path) -> None:
    result, baseline = cli(tmp_path, worsened(mse=0.05), "--update")
    assert result.exit_code == 1
    assert "baseline not updated" in result.output and "above max 0.02" in result.output
    assert json.loads((baseline / "evaluate.json").read_text()) == EVALUATE


ROOT = Path(__file__).parent.parent
CI_BASELINE = ROOT / "metrics" / "ci_baseline"
CI_RULES = ROOT / ".ci" / "gate_rules.yaml"
CELEBA_BASELINE = ROOT / "metrics" / "ci_baseline_celeba"
CELEBA_RULES = ROOT / ".ci" / "gate_rules_celeba.yaml"


@pytest.mark.parametrize(
    ("baseline_dir", "rules_file", "metric", "change", "expected"),
    [
        # the synthetic smoke run
        (CI_BASELINE, CI_RULES, "evaluate.json:mean.swap_accuracy", -0.15, "FAIL"),  # 2x spread
        (CI_BASELINE, CI_RULES, "evaluate.json:mean.swap_accuracy", -0.06, "PASS"),  # within it
        (CI_BASELINE, CI_RULES, "train_classifier.json:test_accuracy.mean", -0.05, "FAIL"),
        (CI_BASELINE, CI_RULES, "evaluate.json:reconstruction.mse", +0.01, "FAIL"),  # +31 %
        # the real-face (celeba-mini) smoke run
        (CELEBA_BASELINE, CELEBA_RULES, "evaluate.json:mean.swap_accuracy", -0.08, "FAIL"),
        (CELEBA_BASELINE, CELEBA_RULES, "evaluate.json:mean.swap_accuracy", -0.03, "PASS"),
        (CELEBA_BASELINE, CELEBA_RULES, "evaluate.json:reconstruction.mse", +0.006, "FAIL"),
        (CELEBA_BASELINE, CELEBA_RULES, "evaluate.json:kid.reconstruction.mean", +0.06, "FAIL"),
        (CELEBA_BASELINE, CELEBA_RULES, "train_classifier.json:test_accuracy.Male", -0.07, "FAIL"),
    ],
)
def test_committed_ci_rules_catch_regressions_beyond_the_noise(
    baseline_dir: Path, rules_file: Path, metric: str, change: float, expected: str
) -> None:
    baseline = gate.read_metrics(baseline_dir)
    rules = gate.read_rules(rules_file)
    assert gate.passed(gate.compare(baseline, baseline, rules))
    rows = {
        row.metric: row
        for row in gate.compare({**baseline, metric: baseline[metric] + change}, baseline, rules)
    }
    assert rows[metric].status == expected


def test_committed_ci_rules_catch_a_missing_metrics_file() -> None:
    baseline = gate.read_metrics(CI_BASELINE)
    run = {name: value for name, value in baseline.items() if not name.startswith("train_fader")}
    rows = gate.compare(run, baseline, gate.read_rules(CI_RULES))
    missing = {row.metric for row in rows if row.status == gate.MISSING}
    assert "train_fader.json:selected.valid/swap_accuracy/mean" in missing
    assert not gate.passed(rows)


def test_one_reader_of_metrics_folders() -> None:
    """The gate reads folders with the report's reader (fader.report.page), not a copy of it."""
    code = [*(ROOT / "fader").rglob("*.py"), *(ROOT / ".ci").glob("*.py")]
    defined = [
        p.relative_to(ROOT).as_posix() for p in code if "def read_metrics_dir(" in p.read_text()
    ]
    assert defined == ["fader/report/page.py"]
