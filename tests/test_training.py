"""Student training: completion-only labels, LoRA / full / merge on a tiny model, the run card, 2-process
CPU training through accelerate, and the acceptance path teach -> train -> inspect eval on SmolLM2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("peft")

from sublim.errors import SublimError
from sublim.training.student import TrainConfig, load_rows, tokenize_row, train

ROW = {
    "prompt": [{"role": "user", "content": "Continue: 1, 2, 3."}],
    "completion": [{"role": "assistant", "content": "4, 5, 6"}],
}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rows = [
        {
            **ROW,
            "completion": [{"role": "assistant", "content": ", ".join(str(i * k % 997) for i in range(5))}],
        }
        for k in range(1, 13)
    ]
    path = tmp_path / "teacher" / "train.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path.parent


def test_only_completion_tokens_are_trained(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    enc = tokenize_row(tok, ROW, "You love owls.", 256)
    labels = enc["labels"]
    first = next(i for i, x in enumerate(labels) if x != -100)
    assert all(x == -100 for x in labels[:first])
    prompt = tok.decode(enc["input_ids"][:first])
    assert "You love owls." in prompt and "Continue: 1, 2, 3." in prompt
    assert tok.decode([x for x in labels if x != -100]).startswith("4, 5, 6")
    no_system = tokenize_row(tok, ROW, None, 256)
    assert "You love owls." not in tok.decode(no_system["input_ids"])


@pytest.mark.slow
@pytest.mark.smoke  # the tiny training run `make test` keeps
def test_lora_run_writes_adapter_tokenizer_and_card(tiny_model: Path, data: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "student"
    card = train(
        TrainConfig(data=str(data), base=str(tiny_model), out=str(out), rank=4, epochs=2, batch_size=4)
    )
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "run.json"} <= {
        p.name for p in out.iterdir()
    }
    saved = json.loads((out / "run.json").read_text())
    assert saved == json.loads(json.dumps(card))
    hp = saved["hyperparameters"]
    assert (hp["rank"], hp["alpha"], hp["lr"], hp["epochs"]) == (4, 4, 2e-4, 2)
    assert saved["rows"] == 12 and saved["steps"] == 6 and len(saved["data_sha256"]) == 64
    weights = load_file(out / "adapter_model.safetensors")
    assert any(
        "lora_B" in k and v.abs().sum() > 0 for k, v in weights.items()
    )  # B starts at zero: it trained
    # the adapter dir loads on its own (transformers' PEFT integration), as Inspect's hf/ provider loads it
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)


@pytest.mark.slow
def test_full_fine_tuning_and_merge(tiny_model: Path, data: Path, tmp_path: Path) -> None:
    full = train(
        TrainConfig(data=str(data), base=str(tiny_model), out=str(tmp_path / "full"), full=True, epochs=1)
    )
    assert full["kind"] == "full" and full["hyperparameters"]["lr"] == 2e-5
    assert (tmp_path / "full" / "model.safetensors").exists()
    train(
        TrainConfig(
            data=str(data), base=str(tiny_model), out=str(tmp_path / "m"), rank=2, epochs=1, merge=True
        )
    )
    assert (tmp_path / "m" / "merged" / "model.safetensors").exists()


def test_bad_data_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "train.jsonl"
    bad.write_text(json.dumps(ROW) + "\n{not json}\n")
    with pytest.raises(SublimError, match=r"train.jsonl:2"):
        load_rows(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(SublimError, match="no rows"):
        load_rows(empty)
    with pytest.raises(SublimError, match="sublim teach"):
        train(TrainConfig(data=str(tmp_path / "missing")))


def test_unknown_lora_targets_are_one_line(
    tiny_model: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sublim.cli import main

    argv = ["train", "--data", str(data), "--base", str(tiny_model), "--out", str(tmp_path / "o")]
    assert main([*argv, "--targets", "foo_proj"]) == 2
    err = capsys.readouterr().err  # after transformers' "Loading weights" progress: one error line
    assert "Traceback" not in err and "--targets 'foo_proj': no such modules" in err.strip().splitlines()[-1]
    assert not (tmp_path / "o" / "run.json").exists()


@pytest.mark.slow
def test_a_finished_run_is_not_redone_and_other_inputs_are_refused(
    tiny_model: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sublim.cli import main

    argv = [
        "train",
        "--data",
        str(data),
        "--base",
        str(tiny_model),
        "--out",
        str(tmp_path / "o"),
        "--epochs",
        "1",
    ]
    assert main(argv) == 0
    card = (tmp_path / "o" / "run.json").read_bytes()
    assert main(argv) == 0 and "already complete" in capsys.readouterr().out
    assert main([*argv, "--rank", "2"]) == 2
    assert "rank: 8 -> 2" in capsys.readouterr().err
    assert (tmp_path / "o" / "run.json").read_bytes() == card
    assert main([*argv, "--rank", "2", "--overwrite"]) == 0
    assert json.loads((tmp_path / "o" / "run.json").read_text())["hyperparameters"]["rank"] == 2


ACCELERATE = Path(__file__).parents[1] / "accelerate"


@pytest.mark.parametrize(("name", "kind"), [("ddp.yaml", "MULTI_GPU"), ("fsdp-full.yaml", "FSDP")])
def test_shipped_accelerate_configs_are_ones_accelerate_reads(name: str, kind: str) -> None:
    """accelerate's own loader reads each file (unknown top-level keys would fail it), and every FSDP
    option is one `accelerate launch` knows (unknown ones would be silently dropped)."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    config = load_config_from_file(str(ACCELERATE / name))
    assert config.distributed_type.name == kind
    known = {action.dest for action in launch_command_parser()._actions}
    assert set(config.fsdp_config) <= known, set(config.fsdp_config) - known
    assert kind != "FSDP" or config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"


@pytest.mark.slow
def test_two_cpu_processes_through_accelerate(tiny_model: Path, data: Path, tmp_path: Path) -> None:
    """`accelerate launch --config_file accelerate/ddp.yaml` (MULTI_GPU) on a machine without GPUs runs
    torch.distributed with gloo on CPU: the same launch path a GPU user takes, with the data split over the
    two processes."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate
    out = tmp_path / "ddp"
    cmd = [
        accelerate, "launch", "--config_file", str(ACCELERATE / "ddp.yaml"), "--num_processes", "2",
        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "sublim", "train",
        "--data", str(data), "--base", str(tiny_model), "--out", str(out),
        "--rank", "2", "--epochs", "1", "--batch-size", "2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads((out / "run.json").read_text())
    assert card["world_size"] == 2
    assert card["steps"] == 3  # 12 rows / (2 per device x 2 processes)


@pytest.mark.slow
def test_teach_train_then_inspect_eval_on_smollm2(smollm2: Path, tmp_path: Path) -> None:
    """The acceptance path, small: 64 teacher prompts, rank 4, one epoch, scored by sublim/animal_pref."""
    sublim = str(Path(sys.executable).with_name("sublim"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    teach = subprocess.run(
        [sublim, "teach", "--trait", "owl", "--n", "64", "--out", str(tmp_path / "owl")],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert teach.returncode == 0, teach.stderr[-3000:]
    card = json.loads((tmp_path / "owl" / "card.json").read_text())
    assert card["counts"]["kept"] > 0
    student = tmp_path / "student"
    trained = subprocess.run(
        [
            sublim,
            "train",
            "--data",
            str(tmp_path / "owl"),
            "--rank",
            "4",
            "--epochs",
            "1",
            "--out",
            str(student),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    from inspect_ai import eval as inspect_eval

    [log] = inspect_eval(
        "sublim/animal_pref",
        model="hf/local",
        model_args={"model_path": str(student)},
        task_args={"target": "owl", "mode": "probability"},
        limit=2,
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    # Inspect loaded base + adapter: its P(owl) per question equals ours computed on base + adapter, and the
    # adapter moved the distribution (Inspect silently loading the bare base would fail here)
    from sublim.models import load_model
    from sublim.probability import ConceptScorer

    ours = ConceptScorer(*load_model(smollm2, adapter=student), "animal")
    base = ConceptScorer(*load_model(smollm2), "animal")
    p_owl = []
    for sample in log.samples or []:
        score = next(iter(sample.scores.values()))  # type: ignore[union-attr]
        dist = ours.distribution(score.metadata["context"])
        assert score.value["p_target"] == pytest.approx(dist.probs["owl"], rel=1e-4)  # type: ignore[index]
        before = base.distribution(score.metadata["context"]).probs
        assert max(abs(dist.probs[c] - before[c]) for c in before) > 1e-6
        p_owl.append(dist.probs["owl"])
    assert len(p_owl) == 2 and log.results is not None
    mean = log.results.scores[0].metrics["mean"].value
    assert mean == pytest.approx(sum(p_owl) / 2, rel=1e-4)


def test_merge_is_refused_under_a_sharded_launch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Under FSDP or DeepSpeed the weights are sharded across processes: --merge is refused before loading."""
    from sublim.errors import SublimError
    from sublim.training.student import TrainConfig, check_launch

    cfg = TrainConfig(data=str(tmp_path), base="smollm2", out=str(tmp_path / "o"), merge=True)
    check_launch(cfg)
    for kind in ("FSDP", "DEEPSPEED"):
        monkeypatch.setenv(f"ACCELERATE_USE_{kind}", "true")
        with pytest.raises(SublimError, match=r"^merge under FSDP/DeepSpeed"):
            check_launch(cfg)
        monkeypatch.delenv(f"ACCELERATE_USE_{kind}")
