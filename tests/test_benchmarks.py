"""The benchmark scripts behind BENCHMARKS.md still run (tiny settings; nothing is timed here)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _bench(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=REPO, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_bench_step_prints_a_row_per_step_and_the_baseline():
    out = _bench("bench_step.py", "--device", "cpu", "--threads", "1", "--nets", "mnist", "--widths", "2",
                 "--repeats", "1", "--warmup", "1", "--methods", "vae", "fisher_ae", "--batch", "8", "--tf32", "on", "off")
    lines = [line for line in out.splitlines() if line.strip().startswith("mnist")]
    assert "(one pass of the encoder and decoder: 0.0 GFLOP" in lines[0]  # width 2, batch 8
    rows = [line.split() for line in lines[1:]]
    labels = [" ".join(row[2:-2]) for row in rows]
    assert labels == ["vae eager", "fisher_ae eager", "vae eager ieee", "fisher_ae eager ieee",
                      "fisher_ae eager native conv+norm", "fisher_ae eager native norm"]
    assert rows[0][-1] == rows[2][-1] == "1.00"  # each arithmetic's rows against its own VAE step


def test_bench_tf32_compares_each_gradient_with_float64():
    out = _bench("bench_tf32.py", "--widths", "2", "--batch", "8", "--train-steps", "1", "--threads", "1")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert sorted(rows) == ["fisher_ae", "vae"]
    for row in rows.values():
        float32, tf32 = float(row[3]), float(row[4])
        assert 0 < float32 < 1e-5 < tf32 < 0.1  # float32's rounding, TF32's 10-bit mantissa
    assert rows["fisher_ae"][7::3] == ["posterior", "reconstruction", "stability"]


def test_bench_epoch_projects_the_config():
    out = _bench("bench_epoch.py", "--config", "config/smoke.yaml", "--datasets", "mnist", "--models", "vae",
                 "--batches", "2", "--bare-steps", "1")
    assert "mnist vae" in " ".join(out.split()) and "projected training wall time of config/smoke.yaml" in out


@pytest.mark.parametrize("sets", ["1", "3"])
def test_bench_svgd_runs(sets):
    out = _bench("bench_svgd.py", "--threads", "1", "--steps", "20", "--particles", "40", "--sets", sets)
    assert "ms/step" in out


def test_epoch_vs_baseline_prints_each_run_and_the_change():
    """Both runs of a round train (here this checkout against itself, the baseline without its
    held-out split), and the change per image is printed for each epoch."""
    out = _bench("epoch_vs_baseline.py", "--baseline-src", "src", "--config", "config/smoke.yaml",
                 "--dataset", "mnist", "--model", "vae", "--epochs", "1")
    rows = [line.split() for line in out.splitlines() if line.split()[:1] == ["1"]]
    assert [row[1:3] for row in rows] == [["this", "1"], ["baseline", "1"]]
    assert [int(row[4]) for row in rows] == [2000, 2100]  # the embedded train split, 100 held out or not
    assert out.splitlines()[-1].startswith("epoch 1: ") and out.rstrip().endswith("%")


def test_epoch_vs_baseline_refuses_a_folder_without_the_package(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/epoch_vs_baseline.py", "--baseline-src", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0 and "holds no fisherae package" in result.stderr


def test_bench_first_step_prints_each_step_and_the_graphs():
    out = _bench("bench_first_step.py", "--width", "2", "--batch", "8", "--steps", "2")
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == ["step 1", "step 2", "graphs compiled"]
    assert lines[-1] == "graphs compiled: 0"  # maps this small run PyTorch's own group norm


def test_bench_products_times_each_product_both_ways():
    out = _bench("bench_products.py", "--threads", "1", "--nets", "mnist", "--widths", "2", "--batch", "8",
                 "--repeats", "1")
    rows = [line for line in out.splitlines() if line.startswith("mnist")]
    assert len(rows) == 6  # two layers, three products each
    decoder_weight_gradient = next(row for row in rows if "decoder fc" in row and "weight gradient" in row)
    assert "[8, 8] x [8, 784]" in decoder_weight_gradient  # x^T g: latent 8, batch 8, 16 x 7 x 7 values
    assert all(row.split()[-1] in ("is", "transposed", "!") for row in rows)


def test_profile_step_lists_the_top_entries_of_each_step():
    out = _bench("profile_step.py", "--device", "cpu", "--threads", "1", "--nets", "mnist", "--width", "2",
                 "--batch", "8", "--methods", "fisher_ae", "--steps", "1", "--warmup", "1", "--top", "5")
    heads = [line for line in out.splitlines() if line.startswith("== ")]
    assert len(heads) == 1 and heads[0].startswith("== mnist fisher_ae: ") and "CPU operators' own time" in heads[0]
    rows = out.split(heads[0])[1].strip().splitlines()[1:]
    assert len(rows) == 5 and any("convolution" in row for row in rows)
    assert not any("!" in row for row in rows)  # no fallback convolution kernel
