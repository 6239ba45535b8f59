import pytest

from kinema.web.loadbench import main, run_loadbench


def test_loadbench_serves_polls_and_jobs_and_reports_latency(tiny_model, tmp_path, capsys):
    result = run_loadbench(6, 3, model=tiny_model, steps=1, frames=5, interval=0.2, home=tmp_path / "home")
    assert result["errors"] == 0, result["error_kinds"]
    assert result["jobs"] == {"done": 3}
    poll = result["latency_ms"]["poll"]
    assert poll["count"] > 6 and 0 < poll["p50"] <= poll["p95"] <= poll["max"]
    assert result["latency_ms"]["submit"]["count"] == 3
    assert result["requests"] >= poll["count"] + 3
    # the command line refuses nonsense with one line and status 2
    with pytest.raises(SystemExit) as exit:
        main(["--polls", "0"])
    assert exit.value.code == 2
    assert "at least 1" in capsys.readouterr().err
