"""Options and config fields: every field is checked where it is declared (type and range), bad values
are one line and exit code 2 with nothing written, and `genlab train MODEL --help` lists the options."""

from __future__ import annotations

import dataclasses
import json
import shutil
import typing

import pytest
import torch

import genlab.evaluation  # noqa: F401  (registers the metrics)
import genlab.models  # noqa: F401
from genlab.cli import main
from genlab.config import DataConfig, DataInfo, RunConfig, TrainConfig, check_names, field_specs, from_dict, to_dict
from genlab.errors import GenlabError
from genlab.models.dcign import DCIGNConfig
from genlab.models.gan import GANConfig
from genlab.models.m2 import M2Config
from genlab.models.vae import VAEConfig
from genlab.registry import MODELS

CONFIG_CLASSES = [DataConfig, TrainConfig, DataInfo, *(MODELS.get(name).Config for name in MODELS)]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["-q", "train", "vae", "--data", "digits", "--steps", "2", "--runs", str(runs), "--no-final",
                 "--set", "model.hidden=16", "--set", "model.latent_dim=2", "--set", "train.eval_every=0",
                 "--set", "train.sample_every=0"]) == 0
    (run,) = runs.iterdir()
    return run


def _copy_with(run, tmp_path, edit) -> str:
    """A copy of ``run`` whose config.json is edited by ``edit(dict)``."""
    bad = tmp_path / "edited-run"
    shutil.copytree(run, bad)
    config = json.loads((bad / "config.json").read_text())
    edit(config)
    (bad / "config.json").write_text(json.dumps(config))
    return str(bad)


def _without_data_info(config):
    del config["data_info"]


def _latent_abc(config):
    config["model_config"]["latent_dim"] = "abc"


def _huge_shape(config):
    config["data_info"]["shape"] = [1, 100_000, 100_000]


TRAIN = ["train", "vae", "--data", "digits", "--steps", "1", "--runs", "{runs}"]
# (argv, what the one line must say); {runs}: a runs folder that must stay empty, {run}: a trained run,
# {out}: an output file that must not be written, {tmp}: a scratch folder
BAD_INPUTS = {
    "batch_size=0": ([*TRAIN, "--set", "train.batch_size=0"], "train.batch_size=0: must be in [1, "),
    "batch_size<0": ([*TRAIN, "--set", "train.batch_size=-4"], "train.batch_size=-4: must be in [1, "),
    "lr=nan": ([*TRAIN, "--set", "train.lr=nan"], "train.lr=nan: must be a finite number"),
    "lr=-1": ([*TRAIN, "--set", "train.lr=-1"], "train.lr=-1.0: must be > 0"),
    "lr=0": ([*TRAIN, "--set", "train.lr=0"], "train.lr=0.0: must be > 0"),
    "latent_dim=-1": ([*TRAIN, "--set", "model.latent_dim=-1"], "model.latent_dim=-1: must be in [1, 1024]"),
    "latent_dim=0": ([*TRAIN, "--set", "model.latent_dim=0"], "model.latent_dim=0: must be in [1, 1024]"),
    "latent_dim=1e8": ([*TRAIN, "--set", "model.latent_dim=100000000"], "must be in [1, 1024]"),
    "hidden=-3": ([*TRAIN, "--set", "model.hidden=-3"], "model.hidden=-3: each value must be in [1, "),
    "hidden=0": ([*TRAIN, "--set", "model.hidden=0"], "model.hidden=0: each value must be in [1, "),
    "image_size=1e5": ([*TRAIN, "--set", "data.image_size=100000"], "data.image_size=100000: must be in [2, "),
    "threads=-1": ([*TRAIN, "--set", "train.threads=-1"], "train.threads=-1: must be in [1, "),
    "threads=1e5": ([*TRAIN, "--set", "train.threads=100000"], "train.threads=100000: must be in [1, "),
    "log_every=0": ([*TRAIN, "--set", "train.log_every=0"], "train.log_every=0: must be >= 1"),
    "device=bogus": ([*TRAIN, "--set", "train.device=bogus"], "train.device=bogus: must be auto, cpu"),
    "device=cuda": ([*TRAIN, "--set", "train.device=cuda"], "CUDA is not available on this machine"),
    "seed>64 bits": ([*TRAIN, "--set", f"train.seed={2**64}"], "must be in [0, 4294967295]"),
    "--seed -1": ([*TRAIN, "--seed", "-1"], "train.seed=-1: must be in [0, "),
    "beta=-1": ([*TRAIN, "--set", "model.beta=-1"], "model.beta=-1.0: must be >= 0"),
    "--epochs -1": ([*TRAIN, "--epochs", "-1"], "train.epochs=-1.0: must be >= 0"),
    "--steps -1": ([*TRAIN[:5], "-1", *TRAIN[6:]], "train.steps=-1: must be >= 0"),
    "time=-1": ([*TRAIN, "--set", "train.time=-1"], "train.time=-1.0: must be >= 0"),
    "label_share=nan": ([*TRAIN, "--set", "data.label_share=nan"], "data.label_share=nan: must be a finite"),
    "label_share=1": ([*TRAIN, "--set", "data.label_share=1"], "data.label_share=1.0: must be in (0, 1)"),
    "--labels 0": ([*TRAIN, "--labels", "0"], "data.labels=0: must be >= 1"),
    "select_metric=bogus": ([*TRAIN, "--set", "train.select_metric=bogus"],
                            "train.select_metric=bogus: 'bogus' is not auto, last or a metric name"),
    "eval_metrics=fd,bogus": ([*TRAIN, "--set", "train.eval_metrics=fd,bogus"], "'bogus' is not a metric name"),
    "lr=abc": ([*TRAIN, "--set", "train.lr=abc"], "--set train.lr=abc: expected float"),
    "compile=maybe": ([*TRAIN, "--set", "train.compile=maybe"], "expected bool"),
    "--runs /dev/null": (["train", "vae", "--data", "digits", "--runs", "/dev/null"], "/dev/null is not a folder"),
    "--runs a file": (["train", "vae", "--data", "digits", "--runs", "{tmp}/file.txt/runs"],
                      "file.txt is not a folder"),
    "sample -n 1e9": (["sample", "{run}", "-n", "1000000000", "-o", "{out}"], "-n 1000000000: must be in [1, 10000]"),
    "sample -n 0": (["sample", "{run}", "-n", "0", "-o", "{out}"], "-n 0: must be in [1, 10000]"),
    "sample -o folder": (["sample", "{run}", "-o", "{tmp}/folder.png"], "folder.png is a folder; name a file"),
    "sample -o under a file": (["sample", "{run}", "-o", "{tmp}/file.txt/x.png"], "file.txt is not a folder"),
    "sample --device cuda": (["sample", "{run}", "--device", "cuda", "-o", "{out}"], "CUDA is not available"),
    "config.json without data_info": (["sample", "{no_data_info}", "-o", "{out}"], "it has no 'data_info'"),
    "config.json latent_dim=abc": (["sample", "{latent_abc}", "-o", "{out}"],
                                   "model.latent_dim=abc: must be an integer"),
    "config.json huge shape": (["sample", "{huge_shape}", "-o", "{out}"], "data_info.shape=1,100000,100000: each"),
    "explore --port 70000": (["explore", "{run}", "--port", "70000"], "--port 70000: must be in [0, 65535]"),
    "explore --port -1": (["explore", "{run}", "--port", "-1"], "--port -1: must be in [0, 65535]"),
    "explore --max-upload nan": (["explore", "{run}", "--max-upload", "nan"], "--max-upload nan: must be a finite"),
    "explore --max-upload inf": (["explore", "{run}", "--max-upload", "inf"], "--max-upload inf: must be a finite"),
    "explore --threads -1": (["explore", "{run}", "--threads", "-1"], "--threads -1: must be in [1, "),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_option_is_one_line_exit_2_and_nothing_written(case, tiny_run, tmp_path, capsys):
    argv, message = BAD_INPUTS[case]
    if "cuda" in case and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "file.txt").write_text("a file where a folder should be")
    (tmp_path / "folder.png").mkdir()
    runs, out = tmp_path / "runs", tmp_path / "out.png"
    places = {"runs": runs, "run": tiny_run, "out": out, "tmp": tmp_path}
    edits = {"no_data_info": _without_data_info, "latent_abc": _latent_abc, "huge_shape": _huge_shape}
    for key, edit in edits.items():
        if "{" + key + "}" in " ".join(argv):
            places[key] = _copy_with(tiny_run, tmp_path, edit)
    assert main([a.format(**places) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("genlab: error:"), err
    assert "Traceback" not in err and message in err, err
    assert not runs.exists() or not any(runs.iterdir())
    assert not out.exists() and not any((tmp_path / "folder.png").iterdir())


@pytest.mark.slow
def test_config_json_errors_name_the_file_and_exit_2_in_a_subprocess(tiny_run, tmp_path):
    import subprocess
    import sys

    bad = _copy_with(tiny_run, tmp_path, _latent_abc)
    proc = subprocess.run([sys.executable, "-m", "genlab", "sample", bad, "-o", str(tmp_path / "x.png")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == f"genlab: error: {bad}/config.json: model.latent_dim=abc: must be an integer"


# --- the mechanism ---------------------------------------------------------------------------------
def _numbers_in(hint) -> bool:
    return hint in (int, float) or any(_numbers_in(a) for a in typing.get_args(hint))


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_field_has_a_doc_and_every_number_a_range(cls):
    unbounded = {(DataInfo, "factor_ranges")}  # any finite (lo, hi)
    for spec in field_specs(cls):
        assert spec.rules.get("doc"), f"{cls.__name__}.{spec.name} has no doc"
        if _numbers_in(spec.hint) and spec.hint is not bool and (cls, spec.name) not in unbounded:
            assert {"min", "max", "choices"} & set(spec.rules), f"{cls.__name__}.{spec.name} has no range"


@pytest.mark.parametrize("name", list(MODELS))
def test_default_configs_pass_and_round_trip_through_json(name):
    config = RunConfig(model=name, model_config=MODELS.get(name).Config(),
                       data_info=DataInfo(shape=(1, 28, 28), kind="image", num_classes=10))
    check_names(config)
    raw = json.loads(config.to_json())
    assert from_dict(MODELS.get(name).Config, raw["model_config"]) == config.model_config
    assert from_dict(TrainConfig, raw["train"]) == config.train
    assert from_dict(DataInfo, raw["data_info"]) == config.data_info


def test_a_redeclared_field_keeps_its_parents_rules():
    for cls in (VAEConfig, DCIGNConfig, M2Config, GANConfig):  # latent_dim redeclared with a new default
        with pytest.raises(GenlabError, match=r"model.latent_dim=0: must be in \[1, 1024\]"):
            cls(latent_dim=0)
    assert GANConfig(latent_dim=None).latent_dim is None  # the redeclaration made it optional


def test_types_are_checked_and_normalised():
    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)
    assert VAEConfig(hidden=[32, 16]).hidden == (32, 16)
    for kwargs, message in [({"batch_size": True}, "must be an integer"), ({"batch_size": 2.5}, "must be an integer"),
                            ({"lr": "0.1"}, "must be a number"), ({"lr": float("inf")}, "must be a finite number"),
                            ({"compile": 1}, "must be true or false"), ({"device": 0}, "must be a string"),
                            ({"eval_metrics": "fd"}, "must be a list of str"), ({"batch_size": None}, "not none")]:
        with pytest.raises(GenlabError, match=message):
            TrainConfig(**kwargs)
    with pytest.raises(GenlabError, match=r"model.betas=0.5: must be 2 values"):
        GANConfig(betas=(0.5,))
    with pytest.raises(GenlabError, match=r"model.channels=: must not be empty"):
        VAEConfig(channels=())
    with pytest.raises(GenlabError, match="data_info.kind=video: must be image or points"):
        DataInfo(shape=(3,), kind="video")


def test_registered_names_are_checked_once_the_registry_is_filled():
    for ok in ("auto", "last", "fd"):
        check_names(TrainConfig(select_metric=ok, eval_metrics=("fd", "elbo")))
    with pytest.raises(GenlabError, match=r"'fid' is not auto, last or a metric name \(did you mean fd\?\)"):
        check_names(TrainConfig(select_metric="fid"))
    with pytest.raises(GenlabError, match="train.eval_metrics=fd,nope: 'nope' is not a metric name"):
        check_names(RunConfig(model="vae", model_config=VAEConfig(), train=TrainConfig(eval_metrics=("fd", "nope"))))


def test_config_json_is_checked_field_by_field():
    with pytest.raises(GenlabError, match="data_info lacks the field.s. shape"):
        from_dict(DataInfo, {"kind": "image"})
    with pytest.raises(GenlabError, match="model has no field.s. nosuch"):
        from_dict(VAEConfig, {"nosuch": 1})
    with pytest.raises(GenlabError, match="train: expected an object of fields, got list"):
        from_dict(TrainConfig, [1, 2])
    assert from_dict(DataInfo, to_dict(DataInfo(shape=(2,), kind="points", factor_ranges=((0.0, 1.0),)))) \
        == DataInfo(shape=(2,), kind="points", factor_ranges=((0.0, 1.0),))


# --- genlab train MODEL --help ---------------------------------------------------------------------
def test_train_model_help_lists_its_options(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "infogan", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  model.")
             or line.startswith("  train.") or line.startswith("  data.")}
    for spec in field_specs(MODELS.get("infogan").Config):
        assert f"model.{spec.name}" in lines
    assert lines["model.categories"].split()[1:4] == ["int", "10", "values"]  # name, type, default, doc
    assert "in [2, 1000]" in lines["model.categories"]
    assert lines["model.loss"].split()[1] == "minimax|nonsaturating|hinge|wasserstein"
    assert lines["train.select_tolerance"].split()[2] == "0.5"  # the model's own training default
    assert {f"train.{f.name}" for f in dataclasses.fields(TrainConfig)} <= set(lines)
    assert {f"data.{f.name}" for f in dataclasses.fields(DataConfig)} <= set(lines)


def test_train_model_help_says_the_defaults_it_takes_for_a_kind_of_data(capsys):
    with pytest.raises(SystemExit):
        main(["train", "gan", "--help"])
    assert "on image data: batch_size=64" in capsys.readouterr().out


def test_train_help_without_a_model_is_the_usual_help(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and "--set KEY=VALUE" in out and "options of the" not in out
