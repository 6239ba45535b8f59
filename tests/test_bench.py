from kinema.bench import LENGTH_PROMPT, lengths


def test_lengths_measures_each_length_in_its_own_process(tiny_model):
    result = lengths(str(tiny_model), frames=(16, 40))
    assert result["prompt"] == LENGTH_PROMPT
    runs = result["runs"]
    assert [r["frames"] for r in runs] == [16, 40]
    for run in runs:
        assert "error" not in run, run
        assert run["peak_rss_mb"] > 0 and run["seconds_per_frame"] > 0
        assert 0 <= run["identity_fraction"] <= 1
    assert result["peak_rss_ratio_longest_to_shortest"] > 0
