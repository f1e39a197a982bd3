"""bench.py end to end in a tiny configuration: its JSON, its table and its profile."""

import json
import pathlib
import subprocess
import sys

import pytest

from dcgan import profiling

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_writes_its_rows_and_a_profile(tmp_path):
    json_path, profile_dir = tmp_path / "bench.json", tmp_path / "profile"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench.py"), "--preset=fast", "--batch_sizes=64",
         "--precisions=float32", "--replicas=2", "--steps=4", "--warmup_steps=2",
         "--steps_per_call=2", "--repeats=2", f"--json_out={json_path}",
         f"--profile_dir={profile_dir}"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads(json_path.read_text())
    names = [row["name"] for row in report["rows"]]
    assert names == ["baseline (tutorial loop, float32)", "input pipeline only",
                     "dcgan fast simultaneous float32 jit=False replicas=2 steps_per_call=2"]
    baseline = report["rows"][0]["images_per_sec"]
    for row in report["rows"]:
        assert row["batch_size"] == 64 and row["images_per_sec"] > 0
        assert row["ratio"] == pytest.approx(row["images_per_sec"] / baseline)
    assert report["peak_rss_mib"] > 100

    # The printed shares come from the trace left in --profile_dir.
    [trace] = profile_dir.glob("plugins/profile/*/*.xplane.pb")
    seconds = profiling.op_seconds(trace)
    networks = {network for network, _, _ in seconds}
    assert {"generator", "discriminator"} <= networks
    assert ("generator", "backward", "Conv2DBackpropFilter") in seconds
    assert "generator     backward" in result.stdout
