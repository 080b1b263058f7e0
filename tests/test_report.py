"""Tests of relic_rl.report on synthetic ablation folders with known numbers."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from relic_rl import report
from relic_rl.report import ReportError, load_ablation, main, plot_curves, write_report

REPS = 200
TIMESTEPS = (1000, 2000, 3000)
ON, OFF, BASE = "kl_weight=1.0", "kl_weight=0.0", "baseline (no aux)"
# Final scores per seed, chosen so that IQM != mean (4 seeds: the middle two are kept).
FINALS = {ON: [100.0, 200.0, 300.0, 1000.0], OFF: [50.0, 60.0, 70.0, 80.0], BASE: [10.0, 20.0, 30.0, 40.0]}
PARAMS: dict[str, dict[str, Any]] = {
    ON: {"aux": "relic", "kl_weight": 1.0},
    OFF: {"aux": "relic", "kl_weight": 0.0},
    BASE: {"aux": "none"},
}


def curve(final: float, timesteps: Sequence[int] = TIMESTEPS) -> list[tuple[int, float]]:
    """A learning curve rising linearly from 0 to ``final``; its normalised AUC is ``final / 2``."""
    fractions = np.linspace(0.0, 1.0, len(timesteps))
    return [(t, float(final * f)) for t, f in zip(timesteps, fractions, strict=True)]


def write_csv(path: Path, rows: Sequence[tuple[int, float]]) -> None:
    lines = ["timesteps,mean_reward,std_reward,episode_rewards"]
    lines += [f"{t},{r},1.0,{r - 1} {r + 1}" for t, r in rows]
    path.write_text("\n".join(lines) + "\n")


def add_run(
    root: Path,
    name: str,
    variant: str,
    params: Mapping[str, Any],
    seed: int,
    rows: Sequence[tuple[int, float]] | None,
    *,
    randomized: Sequence[tuple[int, float]] | None = None,
    state: str = "finished",
) -> Path:
    run = root / "runs" / name
    run.mkdir(parents=True)
    (run / "cell.yaml").write_text(yaml.safe_dump({"variant": variant, "params": dict(params), "seed": seed}))
    (run / "status.yaml").write_text(yaml.safe_dump({"state": state}))
    if rows is not None:
        write_csv(run / "evaluations.csv", rows)
    if randomized is not None:
        write_csv(run / "evaluations_randomized.csv", randomized)
    return run


def make_ablation(
    tmp_path: Path,
    finals: Mapping[str, Sequence[float]] = FINALS,
    *,
    baseline: bool = True,
    randomized_factor: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """An ablation folder with one run per (variant, seed) and linear curves ending at ``finals``."""
    root = tmp_path / "abl"
    root.mkdir()
    variants = [v for v in finals if baseline or v != BASE]
    n_seeds = len(finals[variants[0]])
    config = {
        "env_id": "CarRacing-v3",
        "total_timesteps": TIMESTEPS[-1],
        "seeds": list(range(n_seeds)),
        "grid": {"kl_weight": [1.0, 0.0]},
        "baseline": baseline,
        **(extra or {}),
    }
    (root / "ablation.yaml").write_text(yaml.safe_dump(config))
    for i, variant in enumerate(variants):
        for seed, final in enumerate(finals[variant]):
            rand = None if randomized_factor is None else curve(final * randomized_factor)
            add_run(
                root, f"cell{i}_seed{seed}", variant, PARAMS[variant], seed, curve(final), randomized=rand
            )
    return root


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def fmt_ci(e: Any) -> str:
    return f"{e.point:.2f} [{e.low:.2f}, {e.high:.2f}]"


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


def test_results_csv_rows_and_columns(tmp_path: Path) -> None:
    root = make_ablation(tmp_path)
    paths = write_report(root, reps=REPS)
    assert paths.results_csv == root / "results.csv"
    rows = read_rows(paths.results_csv)
    assert list(rows[0]) == [
        "variant",
        "kl_weight",
        "seed",
        "timesteps",
        "mean_return",
        "randomized_mean_return",
    ]
    assert len(rows) == 3 * 4 * len(TIMESTEPS)  # variants x seeds x evaluation points
    last = [r for r in rows if r["variant"] == ON and r["seed"] == "3" and r["timesteps"] == "3000"]
    assert len(last) == 1
    assert float(last[0]["mean_return"]) == 1000.0
    assert last[0]["kl_weight"] == "1.0"
    assert last[0]["randomized_mean_return"] == ""
    # The baseline has no kl_weight: the column is left empty.
    assert {r["kl_weight"] for r in rows if r["variant"] == BASE} == {""}
    assert [r["variant"] for r in rows[:: 4 * len(TIMESTEPS)]] == [ON, OFF, BASE]  # grid order, baseline last


def test_summary_numbers(tmp_path: Path) -> None:
    root = make_ablation(tmp_path, extra={"command": "relic-ablation --env CarRacing-v3"})
    paths = write_report(root, reps=REPS, seed=0)
    on, off, base = paths.variant(ON), paths.variant(OFF), paths.variant(BASE)
    assert [s.label for s in paths.variants] == [ON, OFF, BASE]
    assert on.n_seeds == 4 and on.seeds == (0, 1, 2, 3)
    np.testing.assert_array_equal(on.final_scores, FINALS[ON])
    # By hand: sorted [100, 200, 300, 1000], floor(0.25 * 4) = 1 dropped per end -> (200 + 300) / 2.
    assert on.final_iqm.point == 250.0
    assert on.final_mean.point == 400.0
    assert off.final_iqm.point == 65.0  # (60 + 70) / 2
    assert base.final_iqm.point == 25.0
    for s in paths.variants:
        assert s.final_iqm.low <= s.final_iqm.point <= s.final_iqm.high
        assert s.final_mean.low <= s.final_mean.point <= s.final_mean.high
        assert s.final_iqm.low >= min(s.final_scores) and s.final_iqm.high <= max(s.final_scores)
        # Linear curves from 0 to the final score: the normalised AUC is half the final score.
        assert s.auc_mean == pytest.approx(np.mean(s.final_scores) / 2)
        assert s.randomized_final_mean is None and s.randomized_ratio is None

    text = paths.summary_md.read_text()
    assert "# Ablation report: CarRacing-v3" in text
    assert "Budget: 3000 timesteps" in text
    assert "relic-ablation --env CarRacing-v3" in text
    assert "Agarwal et al. (2021)" in text
    assert f"| {ON} | 4 | {fmt_ci(on.final_mean)} | {fmt_ci(on.final_iqm)} | 200.00 | - | - |" in text
    assert "250.00 [" in text and "400.00 [" in text and "65.00 [" in text
    assert "## Warnings" not in text


def test_kl_comparison_sign(tmp_path: Path) -> None:
    paths = write_report(make_ablation(tmp_path), reps=REPS)
    kl = [c for c in paths.comparisons if c.kind == "kl"]
    assert [(c.treatment, c.control) for c in kl] == [(ON, OFF)]
    diff = kl[0].mean_difference
    assert diff.point == pytest.approx(400.0 - 65.0)
    assert 0 < diff.low <= diff.point <= diff.high
    assert tuple(kl[0].probability_of_improvement) == (1.0, 1.0, 1.0)  # every on-run beats every off-run
    text = paths.summary_md.read_text()
    assert "## KL on vs off" in text
    assert f"| {ON} | {OFF} | {fmt_ci(diff)} | 1.00 [1.00, 1.00] |" in text
    assert text.count(f"| {OFF} | {fmt_ci(diff)}") == 1

    base = {c.treatment: c for c in paths.comparisons if c.kind == "baseline"}
    assert set(base) == {ON, OFF}
    assert base[OFF].control == BASE
    assert base[OFF].mean_difference.point == pytest.approx(65.0 - 25.0)
    assert "## Against the no-aux baseline" in text


def test_kl_hurting_gives_negative_difference(tmp_path: Path) -> None:
    finals = {ON: [1.0, 2.0, 3.0], OFF: [10.0, 20.0, 30.0]}
    paths = write_report(make_ablation(tmp_path, finals, baseline=False), reps=REPS)
    (kl,) = paths.comparisons
    assert kl.kind == "kl"
    assert kl.mean_difference.point == pytest.approx(-18.0)
    assert kl.mean_difference.high < 0
    assert kl.probability_of_improvement.point == 0.0
    text = paths.summary_md.read_text()
    assert "| -18.00 [" in text
    assert "Against the no-aux baseline" not in text
    # With 3 seeds nothing is trimmed: the IQM is the mean.
    assert paths.variant(ON).final_iqm.point == pytest.approx(2.0)


def test_kl_pairs_only_identical_params(tmp_path: Path) -> None:
    root = tmp_path / "abl"
    root.mkdir()
    grid = {"kl_weight": [1.0, 0.0], "temperature": [0.1, 0.5]}
    (root / "ablation.yaml").write_text(
        yaml.safe_dump(
            {"env_id": "E", "total_timesteps": 3000, "seeds": [0, 1], "grid": grid, "baseline": True}
        )
    )
    finals = {(1.0, 0.1): 10.0, (0.0, 0.1): 5.0, (1.0, 0.5): 1.0, (0.0, 0.5): 4.0}
    for (kl, temp), final in finals.items():
        name = f"kl_weight={kl}, temperature={temp}"
        params = {"aux": "relic", "kl_weight": kl, "temperature": temp}
        for seed in (0, 1):
            add_run(root, f"{kl}_{temp}_{seed}", name, params, seed, curve(final + seed))
    for seed in (0, 1):  # one baseline, with the non-kl grid key at some value
        add_run(root, f"base_{seed}", BASE, {"aux": "none", "temperature": 0.1}, seed, curve(2.0 + seed))
    paths = write_report(root, reps=REPS)
    diffs = {(c.treatment, c.control): c.mean_difference.point for c in paths.comparisons if c.kind == "kl"}
    assert diffs == {
        ("kl_weight=1.0, temperature=0.1", "kl_weight=0.0, temperature=0.1"): pytest.approx(5.0),
        ("kl_weight=1.0, temperature=0.5", "kl_weight=0.0, temperature=0.5"): pytest.approx(-3.0),
    }
    base = [c for c in paths.comparisons if c.kind == "baseline"]
    # A single baseline is the reference of every variant (the temperature does not affect it).
    assert len(base) == 4
    assert {c.control for c in base} == {BASE}
    rows = read_rows(paths.results_csv)
    assert list(rows[0])[:3] == ["variant", "kl_weight", "temperature"]
    assert {r["temperature"] for r in rows if r["variant"] == BASE} == {"0.1"}
    assert paths.variants[0].label == "kl_weight=1.0, temperature=0.1"


def test_one_baseline_per_value_of_a_non_kl_key(tmp_path: Path) -> None:
    root = tmp_path / "abl"
    root.mkdir()
    grid = {"kl_weight": [1.0], "learning_rate": [0.001, 0.01]}
    config = {"env_id": "E", "total_timesteps": 3000, "seeds": [0], "grid": grid, "baseline": True}
    (root / "ablation.yaml").write_text(yaml.safe_dump(config))
    for lr in (0.001, 0.01):
        params = {"aux": "relic", "kl_weight": 1.0, "learning_rate": lr}
        add_run(root, f"relic_{lr}", f"kl_weight=1.0, learning_rate={lr}", params, 0, curve(10.0))
        add_run(root, f"base_{lr}", BASE, {"aux": "none", "learning_rate": lr}, 0, curve(lr * 1000))
    paths = write_report(root, reps=REPS)
    pairs = {(c.treatment, c.control) for c in paths.comparisons if c.kind == "baseline"}
    # Same variant name, different params: the labels are made unique and matched on learning_rate.
    assert pairs == {
        ("kl_weight=1.0, learning_rate=0.001", f"{BASE} (aux=none, learning_rate=0.001)"),
        ("kl_weight=1.0, learning_rate=0.01", f"{BASE} (aux=none, learning_rate=0.01)"),
    }


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def test_curves_files_and_single_panel(tmp_path: Path) -> None:
    paths = write_report(make_ablation(tmp_path), reps=REPS)
    assert paths.curves_png.stat().st_size > 0 and paths.curves_pdf.stat().st_size > 0
    assert paths.curves_pdf.read_bytes().startswith(b"%PDF")
    assert paths.n_panels == 1


def test_figure_layout(tmp_path: Path) -> None:
    fig = plot_curves(load_ablation(make_ablation(tmp_path, randomized_factor=0.5)), reps=REPS)
    assert len(fig.axes) == 2
    assert tuple(fig.get_size_inches()) == (7.0, 6.0)
    top, bottom = fig.axes
    assert "CarRacing-v3" in fig.get_suptitle()
    assert bottom.get_xlabel() == "Timesteps"
    assert "return" in top.get_ylabel().lower() and "return" in bottom.get_ylabel().lower()
    assert "randomized" in bottom.get_title().lower()
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [f"{ON} (n=4)", f"{OFF} (n=4)", f"{BASE} (n=4)"]
    assert min(float(t.get_fontsize()) for t in legend.get_texts()) >= 9
    assert min(float(t.get_fontsize()) for t in top.get_xticklabels() + top.get_yticklabels()) >= 9
    # The plotted mean of the KL-on variant ends at the mean final score.
    assert np.asarray(top.lines[0].get_ydata(), dtype=float)[-1] == pytest.approx(400.0)


def test_randomized_panel_and_ratio(tmp_path: Path) -> None:
    paths = write_report(make_ablation(tmp_path, randomized_factor=0.5), reps=REPS)
    assert paths.n_panels == 2
    on = paths.variant(ON)
    assert on.randomized_final_mean == pytest.approx(200.0)
    assert on.randomized_runs == 4
    assert on.randomized_ratio == pytest.approx(0.5)
    text = paths.summary_md.read_text()
    assert f"| {ON} | 4 | {fmt_ci(on.final_mean)} | {fmt_ci(on.final_iqm)} | 200.00 | 200.00 | 0.50 |" in text
    rows = read_rows(paths.results_csv)
    last = [r for r in rows if r["variant"] == ON and r["seed"] == "3" and r["timesteps"] == "3000"]
    assert float(last[0]["randomized_mean_return"]) == 500.0


def test_curves_are_aligned_by_interpolation(tmp_path: Path) -> None:
    root = tmp_path / "abl"
    root.mkdir()
    (root / "ablation.yaml").write_text(
        yaml.safe_dump(
            {"env_id": "E", "total_timesteps": 2000, "seeds": [0, 1], "grid": {"kl_weight": [1.0]}}
        )
    )
    add_run(root, "a", ON, PARAMS[ON], 0, [(0, 0.0), (1000, 10.0), (2000, 20.0)])
    add_run(root, "b", ON, PARAMS[ON], 1, [(0, 0.0), (500, 0.0), (1500, 30.0), (2500, 40.0)])
    fig = plot_curves(load_ablation(root), reps=REPS)
    line = fig.axes[0].lines[0]
    # Common range [0, 2000], grid = every evaluation timestep inside it.
    np.testing.assert_array_equal(np.asarray(line.get_xdata(), dtype=float), [0, 500, 1000, 1500, 2000])
    # Run b interpolated at 1000 -> 15 and at 2000 -> 35; run a at 500 -> 5 and 1500 -> 15.
    np.testing.assert_allclose(
        np.asarray(line.get_ydata(), dtype=float), np.array([0.0, 2.5, 12.5, 22.5, 27.5])
    )


# --------------------------------------------------------------------------------------------
# Broken runs and folders
# --------------------------------------------------------------------------------------------


def test_missing_and_empty_evaluations_are_skipped(tmp_path: Path) -> None:
    root = make_ablation(tmp_path)
    add_run(root, "z_missing", ON, PARAMS[ON], 4, None, state="failed")
    empty = add_run(root, "z_empty", ON, PARAMS[ON], 5, None, state="failed")
    (empty / "evaluations.csv").write_text("")
    header = add_run(root, "z_header", ON, PARAMS[ON], 6, None, state="interrupted")
    (header / "evaluations.csv").write_text("timesteps,mean_reward,std_reward,episode_rewards\n")
    bad = add_run(root, "z_bad", ON, PARAMS[ON], 7, None)
    (bad / "evaluations.csv").write_text("timesteps,mean_reward,std_reward,episode_rewards\n1000,oops,0,\n")
    add_run(root, "z_short", OFF, PARAMS[OFF], 8, curve(90.0, TIMESTEPS[:2]), state="running")
    (root / "runs" / "z_nocell").mkdir()

    paths = write_report(root, reps=REPS)
    assert paths.variant(ON).n_seeds == 4  # the broken ON runs are not counted
    assert paths.variant(OFF).seeds == (0, 1, 2, 3, 8)  # the running one is used, with a warning
    joined = "\n".join(paths.warnings)
    for name in ("z_missing", "z_empty", "z_header", "z_bad", "z_nocell", "z_short"):
        assert name in joined
    text = paths.summary_md.read_text()
    assert "## Warnings" in text
    assert "Skipped `z_missing`: no evaluations.csv (state: failed)." in text
    assert "`z_empty`: evaluations.csv is empty" in text
    assert "`z_header`: evaluations.csv has no evaluation rows" in text
    assert "`z_short` is running" in text
    assert "skipped: 5" in text


def test_broken_randomized_file_keeps_the_run(tmp_path: Path) -> None:
    root = make_ablation(tmp_path)
    (root / "runs" / "cell0_seed0" / "evaluations_randomized.csv").write_text("")
    paths = write_report(root, reps=REPS)
    assert paths.variant(ON).n_seeds == 4
    assert paths.n_panels == 1
    assert any("randomized evaluations ignored" in w for w in paths.warnings)


def test_not_an_ablation(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        load_ablation(tmp_path / "nope")
    with pytest.raises(ReportError, match=r"no ablation\.yaml.*runs/<cell>"):
        load_ablation(tmp_path)
    run_dir = add_run(tmp_path / "single", "r", ON, PARAMS[ON], 0, curve(1.0))
    with pytest.raises(ReportError, match="single training run"):
        load_ablation(run_dir)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ReportError, match="not a folder"):
        load_ablation(tmp_path / "file.txt")
    assert issubclass(ReportError, ValueError)


def test_bad_ablation_yaml_and_no_runs(tmp_path: Path) -> None:
    (tmp_path / "ablation.yaml").write_text(yaml.safe_dump({"env_id": "E", "grid": {}}))
    with pytest.raises(ReportError, match="total_timesteps, seeds"):
        load_ablation(tmp_path)
    (tmp_path / "ablation.yaml").write_text("- a list\n")
    with pytest.raises(ReportError, match="mapping"):
        load_ablation(tmp_path)
    (tmp_path / "ablation.yaml").write_text("env_id: [unclosed\n")
    with pytest.raises(ReportError, match="not valid YAML"):
        load_ablation(tmp_path)
    config = {"env_id": "E", "total_timesteps": 10, "seeds": [0], "grid": {"kl_weight": [1.0]}}
    (tmp_path / "ablation.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ReportError, match="no run folders"):
        load_ablation(tmp_path)
    add_run(tmp_path, "r0", ON, PARAMS[ON], 0, None, state="failed")
    with pytest.raises(ReportError, match=r"No run .* has evaluation results yet.*r0"):
        write_report(tmp_path, reps=REPS)


# --------------------------------------------------------------------------------------------
# Options and command line
# --------------------------------------------------------------------------------------------


def test_out_dir_and_reproducibility(tmp_path: Path) -> None:
    root = make_ablation(tmp_path)
    a = write_report(root, out_dir=tmp_path / "out_a", reps=REPS, seed=1)
    b = write_report(root, out_dir=tmp_path / "out_b", reps=REPS, seed=1)
    assert a.summary_md.parent == tmp_path / "out_a"
    assert not (root / "summary.md").exists()
    assert a.summary_md.read_text() == b.summary_md.read_text()
    assert a.results_csv.read_text() == b.results_csv.read_text()
    with pytest.raises(ValueError, match="reps"):
        write_report(root, reps=0)


def test_cli_success(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_ablation(tmp_path)
    assert main([str(root), "--reps", str(REPS), "--seed", "3"]) == 0
    assert (root / "summary.md").is_file() and (root / "curves.png").is_file()
    assert "summary.md" in capsys.readouterr().out


def test_cli_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "ablation.yaml" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1  # one paragraph


def test_cli_not_an_ablation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 2
    assert "no ablation.yaml" in capsys.readouterr().err


def test_cli_bad_reps(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--reps", "0"])
    assert exc.value.code == 2


def test_module_exports() -> None:
    assert set(report.__all__) >= {"load_ablation", "write_report", "plot_curves", "main", "ReportError"}


# --------------------------------------------------------------------------------------------
# Small samples: no intervals, per-seed values and lines
# --------------------------------------------------------------------------------------------
TWO_SEEDS = {ON: [100.0, 300.0], OFF: [50.0, 70.0], BASE: [10.0, 30.0]}


def test_fewer_than_three_seeds_show_per_seed_values_and_no_interval(tmp_path: Path) -> None:
    paths = write_report(make_ablation(tmp_path, TWO_SEEDS), reps=REPS)
    text = paths.summary_md.read_text()
    assert f"| {ON} | 2 | 200.00 (no CI; 2 seeds: 100.00, 300.00) | 200.00 (no CI) |" in text
    kl_row = next(line for line in text.splitlines() if line.startswith(f"| {ON} | {OFF} |"))
    assert "140.00 (no CI: 2 vs 2 seeds)" in kl_row and "1.00 (no CI: 2 vs 2 seeds)" in kl_row
    assert "[" not in kl_row  # no interval anywhere in the comparison
    assert "no interval is given" in text


def test_one_seed_is_one_value(tmp_path: Path) -> None:
    paths = write_report(make_ablation(tmp_path, {ON: [120.0], OFF: [60.0], BASE: [5.0]}), reps=REPS)
    text = paths.summary_md.read_text()
    assert f"| {ON} | 1 | 120.00 (no CI; 1 seed: 120.00) |" in text
    assert "P(on > off)" in text and "1.00 (no CI: 1 vs 1 seeds)" in text


def test_figure_with_two_seeds_draws_each_seed_and_no_bands(tmp_path: Path) -> None:
    fig = plot_curves(load_ablation(make_ablation(tmp_path, TWO_SEEDS)), reps=REPS)
    (ax,) = fig.axes
    assert len(ax.collections) == 0  # no confidence band from two runs
    assert len(ax.lines) == 3 * (1 + 2)  # per variant: the mean and each seed
    ends = sorted(float(np.asarray(line.get_ydata(), dtype=float)[-1]) for line in ax.lines)
    assert ends == sorted([200.0, 100.0, 300.0, 60.0, 50.0, 70.0, 20.0, 10.0, 30.0])
    title = fig.get_suptitle()
    assert "CI" not in title.splitlines()[0] and "no CI bands" in title
    assert "2 seeds per variant" in title and "2 deterministic episodes per evaluation" in title


def test_figure_with_enough_seeds_draws_hatched_distinct_bands(tmp_path: Path) -> None:
    fig = plot_curves(load_ablation(make_ablation(tmp_path)), reps=REPS)
    (ax,) = fig.axes
    hatches = [c.get_hatch() for c in ax.collections]
    assert len(hatches) == 3 and len(set(hatches)) == 3 and all(hatches)
    assert "95% bootstrap CI" in fig.get_suptitle()


def test_figure_title_lines_fit_the_figure_width(tmp_path: Path) -> None:
    # The caption with bands is too long for one line of the 7-inch figure: one part per line.
    title = plot_curves(load_ablation(make_ablation(tmp_path)), reps=REPS).get_suptitle()
    lines = title.splitlines()
    assert len(lines) > 2 and max(map(len, lines)) <= 100
    assert "bands: 95% bootstrap CI of the mean" in title


def test_curl_is_compared_with_the_baseline_and_relic_with_curl(tmp_path: Path) -> None:
    root = make_ablation(tmp_path, extra={"curl": True})
    for seed, final in enumerate([50.0, 60.0, 70.0, 80.0]):
        add_run(root, f"curl_seed{seed}", "curl", {"aux": "curl"}, seed, curve(final))
    paths = write_report(root, reps=REPS)
    assert [s.label for s in paths.variants] == [ON, OFF, "curl", BASE]  # ReLIC, CURL, baseline
    assert not paths.variant("curl").is_baseline
    kinds = {(c.kind, c.treatment, c.control) for c in paths.comparisons}
    assert ("baseline", "curl", BASE) in kinds
    assert {(t, c) for k, t, c in kinds if k == "curl"} == {(ON, "curl"), (OFF, "curl")}
    assert not any(k == "kl" and "curl" in (t, c) for k, t, c in kinds)  # CURL has no KL pair
    vs_curl = next(c for c in paths.comparisons if c.kind == "curl" and c.treatment == OFF)
    assert vs_curl.mean_difference.point == pytest.approx(65.0 - 65.0)
    text = paths.summary_md.read_text()
    assert "## Against CURL" in text and "| Variant | CURL | Mean final variant - curl" in text
