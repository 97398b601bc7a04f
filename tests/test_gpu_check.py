"""The prepared GPU check (benches/gpu_check.py) in its CPU smoke mode: every section passes with
tiny models, the JSON report holds what the GPU run will be read by, and nothing it runs (in
process or in the e2e subprocesses) needs the `datasets` package, which the GPU machine lacks.
Device-agnostic: `--device cpu` also on a CUDA machine."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benches" / "gpu_check.py"
SECTIONS = ("unit", "fsdp", "e2e", "hf_encode", "throughput")
CHECKS = {
    "unit": {"padding_invariance", "encode_cpu_vs_device", "train_full", "train_lora", "ddp_world1"},
    "fsdp": {"fsdp_world1_full", "fsdp_world1_lora"},
    "e2e": {"train_full", "train_lora"},
    "hf_encode": {"encode_qwen2_0.5b_shape"},
    "throughput": {"train_qwen2_0.5b_shape"},
}


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_cpu_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    # The GPU machine has no `datasets`: hide it here, in this process and in the e2e subprocesses
    # (a sitecustomize on their PYTHONPATH), so any import of it on these paths fails the check.
    block = tmp_path / "no_datasets"
    block.mkdir()
    (block / "sitecustomize.py").write_text("import sys\nsys.modules['datasets'] = None\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(block), os.environ.get("PYTHONPATH")])))
    monkeypatch.setitem(sys.modules, "datasets", None)

    out = tmp_path / "out"
    rc = _load_script().main(["--out", str(out), "--device", "cpu", "--tiny"])
    report = json.loads((out / "gpu_check.json").read_text())
    failed = {f"{s}/{c}": e.get("error") for s, sec in report["sections"].items() for c, e in sec["checks"].items()
              if not e["ok"]}
    assert rc == 0 and not failed, failed
    assert report["ok"] is True and report["finished"] is True
    assert set(report["sections"]) == set(SECTIONS)
    for name, sec in report["sections"].items():
        assert sec["ok"] is True and sec["seconds"] >= 0
        assert set(sec["checks"]) == CHECKS[name]
    meta = report["meta"]
    assert meta["device"] == "cpu" and meta["tiny"] is True and meta["bf16"] is False
    assert meta["datasets_importable"] is False and meta["datasets_imported"] is False

    unit = report["sections"]["unit"]["checks"]
    for model in ("tiny-random-llama", "tiny-random-bert"):
        pad = unit["padding_invariance"]["figures"][model]
        assert pad["max_rel_err_batch_vs_alone"] <= pad["tolerance"]
        assert unit["encode_cpu_vs_device"]["figures"][model]["self_label_share_equal"] == 1.0
    assert unit["train_lora"]["figures"]["lora_tensors"] > 0
    assert unit["ddp_world1"]["figures"]["backend"] == "gloo"
    for mode in ("full", "lora"):
        fs = report["sections"]["fsdp"]["checks"][f"fsdp_world1_{mode}"]["figures"]
        assert fs["backend"] == "gloo" and fs["param_dtype"] == "float32"
        assert fs["max_abs_pred_diff"] <= fs["pred_atol"] and fs["fsdp"]["state_bytes"] > 0
    for mode in ("full", "lora"):
        acc = report["sections"]["e2e"]["checks"][f"train_{mode}"]["figures"]["accuracy"]
        assert {"weak", "ceiling", "zero_shot", "naive"} <= set(acc)
        assert (out / f"e2e_{mode}" / "results.json").is_file()
    enc = report["sections"]["hf_encode"]["checks"]["encode_qwen2_0.5b_shape"]["figures"]
    assert enc["shared"]["texts"] == enc["whole"]["texts"] > 0 and enc["shared"]["texts_per_s"] > 0
    tp = report["sections"]["throughput"]["checks"]["train_qwen2_0.5b_shape"]["figures"]
    for key in ("tokens_per_s", "mfu", "mfu_all_params", "parameters", "non_embedding_parameters", "timed_steps",
                "loss_last"):
        assert key in tp
    assert tp["tokens_per_s"] > 0 and tp["timed_steps"] > 0
    assert "overall: PASS" in capsys.readouterr().out


def test_gpu_check_reports_failures(tmp_path: Path) -> None:
    """A check that fails is recorded with its error, the others still run, and the exit status is 1."""
    mod = _load_script()

    def boom(ctx):  # noqa: ANN001
        raise RuntimeError("injected failure")

    mod.check_padding = boom
    rc = mod.main(["--out", str(tmp_path), "--device", "cpu", "--tiny", "--only", "unit"])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    checks = report["sections"]["unit"]["checks"]
    assert rc == 1 and report["ok"] is False
    assert checks["padding_invariance"]["ok"] is False
    assert "injected failure" in checks["padding_invariance"]["error"]
    assert checks["encode_cpu_vs_device"]["ok"] is True  # the next check still ran


def test_gpu_check_refuses_missing_cuda(tmp_path: Path) -> None:
    """--device cuda without a CUDA device fails clearly (skipped where CUDA is there)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    rc = _load_script().main(["--out", str(tmp_path), "--only", "unit"])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rc == 1
    assert "no CUDA device" in report["sections"]["setup"]["checks"]["cuda_available"]["error"]
