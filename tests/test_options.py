"""ExplainOptions: the one place for explanation defaults and ranges, checked once, one message per mistake."""
from __future__ import annotations

import click
import pytest

from twolevel.errors import OptionError
from twolevel.options import MAX_SAMPLES, ExplainOptions, default, options_from_request, rule


def test_defaults_are_the_papers():
    opts = ExplainOptions()
    # samples: "auto" by default, capped at the paper's 50,000 (twolevel/explain/adaptive.py)
    assert (opts.samples, opts.auto_cap, opts.ratio, opts.seed, opts.batch_size, opts.griffin_lim_iters) == (
        "auto", 50_000, 1e-6, 0, 256, 64)
    assert opts.target == default("target") == "articulation" and opts.target_kind == "midlevel"
    assert ExplainOptions(target="energy").target_kind == "emotion"


@pytest.mark.parametrize("changes, code, words", [
    ({"samples": 0}, "bad_samples", ["samples", "1 to 200,000", "0"]),
    ({"samples": 1000.5}, "bad_samples", ["whole number"]),
    ({"samples": True}, "bad_samples", ["samples"]),
    ({"ratio": 0.0}, "bad_ratio", ["ratio", "above 0"]),
    ({"ratio": float("nan")}, "bad_ratio", ["ratio"]),
    ({"seed": -1}, "bad_seed", ["seed", "from 0 to 4,294,967,295"]),
    ({"seed": 2**64}, "bad_seed", ["seed", "from 0 to 4,294,967,295"]),  # issue 11: failed in Griffin-Lim after LIME
    ({"batch_size": 10_000}, "bad_batch_size", ["batch_size", "8,192"]),
    ({"griffin_lim_iters": 0}, "bad_iterations", ["griffin_lim_iters"]),
    ({"top_midlevels": 8}, "bad_top_midlevels", ["top_midlevels", "1 to 7"]),
    ({"offset": -0.5}, "bad_offset", ["offset"]),
    ({"target": "loudness"}, "unknown_target", ["target", "articulation", "tender"]),
    ({"resynthesis": "yes"}, "bad_option", ["resynthesis", "true or false"]),
    ({"design": "sobol"}, "bad_design", ["design", "antithetic, independent", "sobol"]),
    ({"precision": "fp8"}, "bad_precision", ["precision", "fp32, bf16, fp16", "fp8"]),
])
def test_each_mistake_names_the_option_and_its_range(changes, code, words):
    with pytest.raises(OptionError) as err:
        ExplainOptions(**changes)
    assert err.value.code == code
    assert "\n" not in err.value.message
    for word in words:
        assert word in err.value.message


def test_replace_checks_again_and_refuses_unknown_names():
    opts = ExplainOptions().replace(samples=1000, ratio=1)
    assert opts.samples == 1000 and isinstance(opts.ratio, float)
    with pytest.raises(OptionError) as err:
        opts.replace(sampels=10)
    assert err.value.code == "bad_option" and "sampels" in err.value.message


def test_request_text_becomes_options_over_defaults():
    base = ExplainOptions(samples=1000, batch_size=64, resynthesis=False)
    opts = options_from_request({"samples": b" 500 ", "seed": "3", "ratio": "1e-5", "include_audio": "true",
                                 "target": "energy"}, defaults=base)
    assert opts == ExplainOptions(target="energy", samples=500, seed=3, ratio=1e-5, batch_size=64, resynthesis=True)
    assert options_from_request({}, defaults=base) == base


@pytest.mark.parametrize("values, code", [
    ({"samples": "many"}, "bad_samples"),
    ({"seed": "1.5"}, "bad_seed"),
    ({"include_audio": "perhaps"}, "bad_option"),
    ({"colour": "red", "size": "2"}, "bad_option"),
])
def test_request_mistakes(values, code):
    with pytest.raises(OptionError) as err:
        options_from_request(values)
    assert err.value.code == code
    if code == "bad_option" and "colour" in values:
        assert "colour" in err.value.message and "size" in err.value.message  # every unknown key named


def test_server_limits_and_allowed_keys():
    with pytest.raises(OptionError) as err:
        options_from_request({"samples": "6000"}, limits={"samples": (10, 5000)})
    assert err.value.code == "bad_samples" and "10 to 5,000" in err.value.message and "server" in err.value.message
    assert options_from_request({"samples": "5000"}, limits={"samples": (10, 5000)}).samples == 5000
    with pytest.raises(OptionError) as err:
        options_from_request({"batch_size": "8"}, allowed=("samples",))
    assert err.value.code == "bad_option"


def test_samples_take_auto_or_a_number():
    assert ExplainOptions(samples="auto").samples == "auto"
    assert options_from_request({"samples": " auto "}).samples == "auto"
    assert options_from_request({"samples": "5000"}).samples == 5000
    for bad in ("Auto!", 0, "", 1.5):
        with pytest.raises(OptionError) as err:
            ExplainOptions(samples=bad) if not isinstance(bad, str) else options_from_request({"samples": bad})
        assert err.value.code == "bad_samples"
    with pytest.raises(OptionError):
        ExplainOptions(auto_cap=0)


def test_click_types_come_from_the_rules():
    from twolevel_cli.common import click_type

    samples = click_type(rule("samples"))  # a number in range, or the word auto
    assert samples.convert("auto", None, None) == "auto" and samples.convert("AUTO", None, None) == "auto"
    assert samples.convert("5000", None, None) == 5000
    for bad in ("0", str(MAX_SAMPLES + 1), "many"):
        with pytest.raises(click.BadParameter):
            samples.convert(bad, None, None)
    cap = click_type(rule("auto_cap"))
    assert isinstance(cap, click.IntRange) and (cap.min, cap.max) == (1, MAX_SAMPLES)
    ratio = click_type(rule("ratio"))
    assert isinstance(ratio, click.FloatRange) and ratio.min == 0 and ratio.min_open


@pytest.mark.parametrize("cores, load, expected", [
    (2, 0.1, 2),   # idle: every core
    (2, 0.9, 1),   # one core busy
    (2, 3.5, 1),   # overloaded: still one
    (16, 4.2, 12),
])
def test_default_threads_take_the_idle_cores(monkeypatch, cores, load, expected):
    from twolevel.options import default_threads

    monkeypatch.delenv("TWOLEVEL_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    monkeypatch.setattr("os.getloadavg", lambda: (load, load, load))
    assert default_threads() == expected
    assert default_threads(3) == 3  # a caller's choice wins
    monkeypatch.setenv("TWOLEVEL_THREADS", "5")
    assert default_threads(3) == 5  # and the environment wins over both


def test_default_threads_without_a_load_average(monkeypatch):
    from twolevel.options import default_threads

    def unreadable():
        raise OSError("no load average here")

    monkeypatch.delenv("TWOLEVEL_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setattr("os.getloadavg", unreadable)
    assert default_threads() == 4  # half the cores
