"""`lavid report` on fake finished runs (worklogs in mdistiller's format, 3 seeds)."""

import csv
from pathlib import Path

import pytest

from lavid_plugin.cli import main as lavid
from lavid_plugin.config import load_cfg
from lavid_plugin.errors import LavidError
from lavid_plugin.report import parse_worklog

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "lavid"


def write_run(root, config, seed, epochs, final_extra=True):
    """``epochs``: list of dicts of worklog values, one per epoch (as Trainer.log writes them)."""
    cfg = load_cfg(str(CONFIGS / config), ["EXPERIMENT.SEED", str(seed), "SOLVER.EPOCHS", str(len(epochs))])
    folder = root / cfg.EXPERIMENT.PROJECT / f"{Path(config).stem}_seed{seed}"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(cfg.dump())
    lines = []
    for n, values in enumerate(epochs, 1):
        lines += ["-" * 25, f"epoch: {n}", "lr: 0.010000", "train_acc: 10.00", "train_loss: 3.00"]
        lines += [f"{k}: {v:.2f}" for k, v in values.items()]
        lines += ["loss_ce: 1.2345", "-" * 25]
    text = "\n".join(lines) + "\n"
    if final_extra:
        text += "best_acc\t" + f"{max(v['test_acc'] for v in epochs):.2f}"
    (folder / "worklog.txt").write_text(text)
    return folder


# final / best-epoch test accuracy per (config, seed): the best epoch is the first one
ACC = {
    ("cub/res18_vanilla.yaml", 0): (50.0, 52.0), ("cub/res18_vanilla.yaml", 1): (52.0, 53.0),
    ("cub/res18_vanilla.yaml", 2): (54.0, 55.0),
    ("cub/res18_kd.yaml", 0): (55.0, 56.0), ("cub/res18_kd.yaml", 1): (55.0, 57.0), ("cub/res18_kd.yaml", 2): (55.0, 58.0),
    ("cub/res18.yaml", 0): (60.0, 61.0), ("cub/res18.yaml", 1): (61.0, 62.0), ("cub/res18.yaml", 2): (62.0, 63.0),
    ("flowers/res18_vanilla.yaml", 0): (70.0, 71.0), ("flowers/res18_vanilla.yaml", 1): (71.0, 72.0),
    ("flowers/res18_vanilla.yaml", 2): (72.0, 73.0),
    ("flowers/res18.yaml", 0): (69.0, 80.0), ("flowers/res18.yaml", 1): (69.0, 80.0), ("flowers/res18.yaml", 2): (69.0, 80.0),
}


@pytest.fixture
def runs(tmp_path):
    for (config, seed), (final, best) in ACC.items():
        write_run(tmp_path / "out", config, seed, [{"test_acc": best, "test_acc_top5": 90.0, "test_loss": 1.0},
                                                    {"test_acc": final, "test_acc_top5": 91.0, "test_loss": 1.1}])
    return tmp_path / "out"


def test_table1_markdown_and_csv(runs, tmp_path, capsys):
    assert lavid(["report", str(runs), "--table", "1", "--out", str(tmp_path / "t1"), "--select", "final",
                  "best_test_acc"]) == 0
    md = (tmp_path / "t1.md").read_text()
    final, best = md.split("**Table 1: top-1 accuracy (%), best epoch")
    assert "final epoch, mean ± std over seeds" in final
    assert "| method | cub res18 | flowers res18 |" in final
    # rows in the paper's order; mean ± sample std; bold best, underlined second per column
    assert "| vanilla | 52.00 ± 2.00 | **71.00 ± 1.00** |" in final
    assert "| kd | <u>55.00 ± 0.00</u> | – |" in final
    assert "| lavid | **61.00 ± 1.00** | <u>69.00 ± 0.00</u> |" in final
    assert final.index("| vanilla") < final.index("| kd") < final.index("| lavid")
    assert "selected on the test set" in best
    assert "| lavid | **62.00 ± 1.00** | **80.00 ± 0.00** |" in best
    assert "| vanilla | 53.33 ± 1.53 | <u>72.00 ± 1.00</u> |" in best
    rows = list(csv.DictReader(open(tmp_path / "t1.csv")))
    row = next(r for r in rows if r["epoch"] == "final" and r["method"] == "lavid" and r["dataset"] == "cub")
    assert (row["student"], float(row["mean"]), float(row["std"]), row["seeds"]) == ("res18", 61.0, 1.0, "3")


def test_table4_waterbirds_groups(tmp_path):
    for cfg, worst in (("waterbirds/res18_vanilla.yaml", 40.0), ("waterbirds/res18.yaml", 60.0)):
        for seed in range(3):
            write_run(tmp_path / "out", cfg, seed, [{"test_acc": 80.0, "test_acc_avg_group": 70.0 + seed,
                                                     "test_acc_best_group": 95.0, "test_acc_worst_group": worst,
                                                     "test_loss": 1.0}])
    md = __import__("lavid_plugin.report", fromlist=["report"]).report([tmp_path / "out"], 4)
    assert "| method | res18 Overall | res18 Group mean | res18 Best group | res18 Worst group |" in md
    # equal means share the mark
    assert "| lavid | **80.00 ± 0.00** | **71.00 ± 1.00** | **95.00 ± 0.00** | **60.00 ± 0.00** |" in md
    assert "| vanilla | **80.00 ± 0.00** | **71.00 ± 1.00** | **95.00 ± 0.00** | <u>40.00 ± 0.00</u> |" in md


def test_unfinished_runs_are_refused_unless_allowed(tmp_path):
    write_run(tmp_path / "out", "cub/res18.yaml", 0, [{"test_acc": 1.0, "test_loss": 2.0}], final_extra=False)
    with pytest.raises(LavidError, match="not finished"):
        __import__("lavid_plugin.report", fromlist=["report"]).report([tmp_path / "out"], 1)
    md = __import__("lavid_plugin.report", fromlist=["report"]).report([tmp_path / "out"], 1, allow_unfinished=True)
    assert "| lavid | **1.00 ± 0.00** |" in md


def test_parse_worklog_reads_groups_and_the_best_line():
    text = "-" * 25 + "\nepoch: 3\nlr: 0.000100\ntest_acc: 12.50\ntest_acc_worst_group: 3.00\n" + "-" * 25 + \
        "\nbest_acc\t12.50"
    epochs, finished = parse_worklog(text)
    assert finished and epochs == [{"epoch": 3, "lr": 0.0001, "test_acc": 12.5, "test_acc_worst_group": 3.0}]


def test_runs_the_table_does_not_know_are_listed_not_dropped(runs, tmp_path):
    from lavid_plugin.report import report

    for cfg, tag in (("cub/res18_kd.yaml", "table1,cub,res18,fancy_new_method"), ("cub/res18.yaml", "my own run")):
        folder = write_run(tmp_path / "out2", cfg, 7, [{"test_acc": 1.0}])
        (folder / "config.yaml").write_text((folder / "config.yaml").read_text().replace(
            load_cfg(str(CONFIGS / cfg)).EXPERIMENT.TAG, tag))
    write_run(tmp_path / "out2", "waterbirds/res18.yaml", 0, [{"test_acc": 1.0, "test_acc_avg_group": 1.0,
                                                               "test_acc_best_group": 1.0, "test_acc_worst_group": 1.0}])
    md = report([runs, tmp_path / "out2"], "1")
    assert "| lavid | **61.00 ± 1.00** | <u>69.00 ± 0.00</u> |" in md  # the known runs, as before
    assert "Not in this table: 1 run(s) of table4." in md
    assert "Not in any table (EXPERIMENT.TAG 'table1,cub,res18,fancy_new_method'): " in md
    assert "Not in any table (EXPERIMENT.TAG 'my own run'): " in md and "res18_seed7" in md


def test_select_best_val_loss_follows_the_runs_eval_freq(tmp_path):
    from lavid_plugin.report import report

    losses = [3.0, 0.5, 2.0, 1.0]  # epoch 2 has the lowest loss, but EVAL_FREQ 3 checks only epochs 3 and 4 (the last)
    for seed in range(2):
        folder = write_run(tmp_path / "out", "cub/res18.yaml", seed,
                           [{"test_acc": 10.0 * (n + 1), "test_loss": v} for n, v in enumerate(losses)])
        (folder / "config.yaml").write_text((folder / "config.yaml").read_text().replace("EVAL_FREQ: 5", "EVAL_FREQ: 3"))
    md = report([tmp_path / "out"], "1", select=["best_val_loss", "final"])
    first, second = md.split("**Table 1")[1:3]
    assert "lowest validation loss" in first and "| lavid | **40.00 ± 0.00** |" in first  # epochs 3 and 4 checked
    assert "final epoch" in second


def test_by_default_the_report_prints_the_final_epoch_and_each_configs_own_selection(tmp_path, capsys):
    """The paper-table configs select as the authors did (lowest validation loss, every 5 epochs): the default
    report shows the final epoch and that selection, labelled, not mdistiller's best-on-test."""
    epochs = [{"test_acc": 40.0 + e, "test_loss": 2.0 - 0.1 * e} for e in range(1, 11)]
    epochs[4]["test_loss"] = 0.1  # epoch 5: the lowest validation loss at a checked epoch
    epochs[6]["test_loss"] = 0.05  # epoch 7: lower, but not a checked epoch (every 5)
    epochs[2]["test_acc"] = 99.0  # epoch 3: the best test accuracy, which the authors' rule does not pick
    write_run(tmp_path / "out", "cub/res18.yaml", 0, epochs)
    assert load_cfg(str(CONFIGS / "cub/res18.yaml")).LOG.SELECT == "best_val_loss"
    assert lavid(["report", str(tmp_path / "out"), "--table", "1"]) == 0
    final, chosen = capsys.readouterr().out.split("**Table 1: top-1 accuracy (%), LOG.SELECT best_val_loss")
    assert "final epoch" in final and "50.00 ± 0.00" in final
    assert "lowest validation loss" in chosen and "45.00 ± 0.00" in chosen and "99.00" not in chosen


def test_table_b_best_layer_feeds_table_1s_fitnet_and_crd_rows(tmp_path, capsys):
    """Appendix B: each baseline at its best layer. lavid report --table B --best-layer writes it; reproduce.py
    --table 1 --mllm-layer best runs Table B's cell at that layer; lavid report --table 1 --mllm-layer best shows it."""
    import json

    from lavid_plugin.reproduce import main as reproduce

    out = tmp_path / "out"
    # FitNet on CUB / ResNet-18: layer -6 best (2 seeds), -12 worse, -30 best on one seed only (a lower mean)
    acc = {("fitnet", 6): (70.0, 72.0), ("fitnet", 12): (65.0, 66.0), ("fitnet", 30): (80.0, 50.0),
           ("crd", 12): (60.0, 61.0), ("crd", 18): (58.0, 59.0)}
    for (kind, layer), values in acc.items():
        for seed, a in enumerate(values):
            write_run(out, f"cub/res18_{kind}_llava_l{layer}.yaml", seed, [{"test_acc": a, "test_loss": 1.0}] * 240)
    write_run(out, "cub/res18_fitnet_llava.yaml", 0, [{"test_acc": 40.0, "test_loss": 1.0}] * 5)  # Table 1 at -12
    assert lavid(["report", str(out), "--table", "B", "--best-layer"]) == 0
    printed = capsys.readouterr().out
    assert "| cub | res18 | fitnet | -6 | 71.00 |" in printed and "| cub | res18 | crd | -12 | 60.50 |" in printed
    doc = json.loads((out / "best_layers.json").read_text())
    assert doc["layers"] == {"cub": {"res18": {"fitnet": -6, "crd": -12}}}
    assert doc["means"]["cub"]["res18"]["fitnet"] == {"-30": 65.0, "-12": 65.5, "-6": 71.0}

    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()) as f:
        assert reproduce(["--table", "1", "--datasets", "cub", "--students", "res18", "--methods", "fitnet_llava",
                          "crd_llava", "--seeds", "3", "--prefix", str(out), "--mllm-layer", "best", "--dry-run"]) == 0
    buf = f.getvalue().splitlines()
    runs = [x for x in buf if "tools/train.py" in x and "res50" not in x]
    assert len(runs) == 6
    assert sum("configs/lavid/cub/res18_fitnet_llava_l6.yaml" in x for x in runs) == 3
    assert sum("configs/lavid/cub/res18_crd_llava_l12.yaml" in x for x in runs) == 3
    # Table B's finished seeds 0 and 1 are its own runs: only seed 2 is left to run at each layer
    assert sum(x.startswith("skip (finished)") for x in runs) == 4 and buf[0].startswith("Table 1: 6 runs, 4 finished")

    assert lavid(["status", str(out), "--table", "1", "--datasets", "cub", "--students", "res18", "--methods",
                  "fitnet_llava", "crd_llava", "--mllm-layer", "best"]) == 0
    status = capsys.readouterr().out
    assert "tableB,cub,res18,fitnet_llava_l6     2/3" in status and "runs: 4 finished" in status
    assert lavid(["report", str(out), "--table", "1", "--mllm-layer", "best", "--select", "final"]) == 0
    text = capsys.readouterr().out
    row = next(x for x in text.splitlines() if x.startswith("| fitnet_llava |"))
    assert "71.00 ± 1.41" in row  # layer -6's runs, not Table 1's -12 run (40)
    assert "Table B's runs at each column's best layer (cub res18 crd -12; cub res18 fitnet -6)" in text
    assert lavid(["report", str(tmp_path / "out"), "--table", "3", "--mllm-layer", "best"]) == 2
    capsys.readouterr()
    (out / "best_layers.json").unlink()
    assert reproduce(["--table", "1", "--datasets", "cub", "--prefix", str(out), "--mllm-layer", "best",
                      "--dry-run"]) == 2
    assert "no best-layer file; run Table B, then lavid report" in capsys.readouterr().err
