"""The command-line recipes on generated data: prepare_voxceleb.py (bad files included),
the streaming path, train.py, and the quick end-to-end demo."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import synthetic_voice
from datasets import Audio, Dataset, load_dataset, load_from_disk

from ssps_trainers import MultiViewCollator, SSLTrainer, SSLTrainingArguments
from ssps_trainers.audio_datasets import load_audio_dataset, standardize
from ssps_trainers.ssps_diagnostics import paper_ssps_recommended

REPO = Path(__file__).resolve().parents[1]


def script(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def handmade_tree(root: Path, rng) -> None:
    """A VoxCeleb-shaped tree with good, m4a, 8 kHz stereo and broken files."""
    good = synthetic_voice(rng, 24000)
    (root / "id1" / "vidA").mkdir(parents=True)
    soundfile.write(root / "id1" / "vidA" / "00001.wav", good, 16000)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(root / "id1" / "vidA" / "00001.wav"),
                    "-c:a", "aac", str(root / "id1" / "vidA" / "00002.m4a")], check=True)  # fmt: skip
    (root / "id2" / "vidB").mkdir(parents=True)
    stereo = np.stack([synthetic_voice(rng, 12000), synthetic_voice(rng, 12000)], axis=1)
    soundfile.write(root / "id2" / "vidB" / "00001.wav", stereo, 8000)
    (root / "id2" / "vidB" / "00002.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (root / "id2" / "vidC").mkdir(parents=True)
    soundfile.write(root / "id2" / "vidC" / "00001.wav", np.zeros(0, dtype=np.float32), 16000)
    soundfile.write(root / "id2" / "vidC" / "00002.wav", np.full(16000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    soundfile.write(root / "id2" / "vidC" / "00003.wav", good[:1000], 16000)


def test_prepare_voxceleb_on_a_handmade_tree(tmp_path, rng) -> None:
    handmade_tree(tmp_path / "tree", rng)
    (tmp_path / "trials.txt").write_text("1 id1/vidA/00001.wav id1/vidA/00002.m4a\n0 id1/vidA/00001.wav id2/vidB/00001.wav\n")
    command = ["scripts/prepare_voxceleb.py", "--train_root", str(tmp_path / "tree"), "--test_root", str(tmp_path / "tree"),
               "--trials", str(tmp_path / "trials.txt"), "--output_dir", str(tmp_path / "out"), "--shard_size", "3",
               "--num_workers", "2", "--parquet_shards", "2"]  # fmt: skip
    result = script(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    train = load_from_disk(str(tmp_path / "out" / "train"))
    assert train["utt_id"] == ["id1/vidA/00001.wav", "id1/vidA/00002.m4a", "id2/vidB/00001.wav"]
    assert train["sample_index"] == [0, 1, 2]
    assert train["speaker_id"] == ["id1", "id1", "id2"] and train["video_id"] == ["vidA", "vidA", "vidB"]
    assert abs(train["duration"][2] - 1.5) < 0.01  # 12000 samples at 8 kHz, resampled
    assert isinstance(train.features["audio"], Audio)  # the standard feature: decodes with the library
    samples = train[2]["audio"].get_all_samples()
    assert samples.sample_rate == 16000 and samples.data.shape[0] == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    skipped = "\n".join(report["train"]["skipped"])
    for name, reason in (("vidB/00002.wav", "cannot decode"), ("vidC/00001.wav", "no samples"),
                         ("vidC/00002.wav", "NaN"), ("vidC/00003.wav", "shorter than")):  # fmt: skip
        assert name in skipped and reason in skipped, (name, skipped)
    assert any("resampled from 8000" in w for w in report["train"]["warnings"])
    assert any("2 channels averaged" in w for w in report["train"]["warnings"])
    assert sorted(p.name for p in (tmp_path / "out" / "train_parquet" / "data").glob("*.parquet")) == [
        "train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]  # the push_to_hub layout
    # resumable: finished shards are reused, the result is identical
    again = script(*command)
    assert again.returncode == 0 and load_from_disk(str(tmp_path / "out" / "train"))["utt_id"] == train["utt_id"]
    # the prepared data trains through both loading paths (map-style and parquet streaming)
    from test_ssl_trainer import tiny_config

    from modeling_ssps import SSPSForPreTraining

    for streaming in (False, True):
        source = tmp_path / "out" / ("train_parquet" if streaming else "train")
        dataset = standardize(load_audio_dataset(source, streaming=streaming), 16000, num_samples=3)
        if streaming:
            assert [row["sample_index"] for row in dataset] == [0, 1, 2]  # the stream's index column
            dataset = dataset.repeat(None)
        args = SSLTrainingArguments(
            output_dir=str(tmp_path / f"run{int(streaming)}"), method="simclr", per_device_train_batch_size=2,
            max_steps=2, num_train_samples=3, report_to=[], use_cpu=True, disable_tqdm=True, save_steps=100,
            logging_steps=1, ignore_data_skip=True,
        )  # fmt: skip
        collator = MultiViewCollator(crop_samples=8000)
        if streaming:
            collator.epoch = None
        trainer = SSLTrainer(model=SSPSForPreTraining(tiny_config("simclr")), args=args, train_dataset=dataset, data_collator=collator)
        trainer.train()
        assert trainer.state.global_step == 2
    # a trial naming a missing utterance is a clear error
    (tmp_path / "bad.txt").write_text("1 id1/vidA/00001.wav id9/nope/00001.wav\n")
    bad = script("scripts/prepare_voxceleb.py", "--test_root", str(tmp_path / "tree"), "--trials", str(tmp_path / "bad.txt"),
                 "--output_dir", str(tmp_path / "out2"), "--num_workers", "1")  # fmt: skip
    assert bad.returncode != 0 and "id9/nope/00001.wav" in bad.stderr


def streaming_trainer(dataset, tmp_path, rows) -> SSLTrainer:
    from test_ssl_trainer import tiny_config

    args = SSLTrainingArguments(
        output_dir=str(tmp_path / "run"), method="simclr", per_device_train_batch_size=4, max_steps=4,
        num_train_samples=len(rows["sample_index"]), logging_steps=1, save_steps=100, report_to=[],
        use_cpu=True, disable_tqdm=True, ssps=True, ssps_start_epoch=1, ssps_num_clusters=3,
        ssps_queue_size=6, ignore_data_skip=True,
    )  # fmt: skip
    collator = MultiViewCollator(crop_samples=8000, reference_samples=12000)
    collator.epoch = None  # streaming: fresh crops per call
    torch.manual_seed(0)
    return SSLTrainer(model=__import__("modeling_ssps").SSPSForPreTraining(tiny_config("simclr")), args=args,
                      train_dataset=dataset, data_collator=collator)  # fmt: skip


@pytest.mark.parametrize("source", ["to_iterable_dataset", "parquet"])
def test_streaming_path_runs_virtual_epochs(source, tmp_path, tiny_wav_rows) -> None:
    dataset = Dataset.from_dict(tiny_wav_rows)
    if source == "to_iterable_dataset":
        stream = dataset.to_iterable_dataset(num_shards=2)
    else:
        for shard in range(2):
            dataset.shard(2, shard, contiguous=True).to_parquet(str(tmp_path / f"train-{shard}.parquet"))
        stream = load_dataset("parquet", data_files=sorted(str(p) for p in tmp_path.glob("*.parquet")), split="train", streaming=True)
    stream = stream.shuffle(seed=0, buffer_size=8).repeat(None)
    trainer = streaming_trainer(stream, tmp_path, tiny_wav_rows)
    assert trainer.steps_per_epoch == 2
    trainer.train()
    assert trainer.state.global_step == 4
    assert int(trainer.ssps.clustered_epoch) == 1  # virtual epoch 1 started at step 2
    assert [h["step"] for h in trainer.state.log_history if "ssps/coverage" in h] == [3, 4]


def test_train_script_help_and_bad_recipe(tmp_path) -> None:
    result = script("scripts/train.py", "--help")
    assert result.returncode == 0 and "--ssps" in result.stdout and "--streaming" in result.stdout
    (tmp_path / "bad.json").write_text('{"not_a_setting": 1}')
    bad = script("scripts/train.py", "--recipe", str(tmp_path / "bad.json"), "--output_dir", str(tmp_path / "x"))
    assert bad.returncode != 0 and "not_a_setting" in bad.stderr
    missing = script("scripts/train.py", "--dataset", str(tmp_path / "nothing"), "--output_dir", str(tmp_path / "x"), "--use_cpu")
    assert missing.returncode != 0 and "nothing does not exist" in missing.stderr


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path) -> None:
    result = script("scripts/demo.py", "--quick", "--output_dir", str(tmp_path / "demo"), timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    recommended = summary["recommended"]
    paper = paper_ssps_recommended(summary["diagnosis"])
    assert recommended == ("ssps_paper" if paper else "baseline")  # a weak verdict: no SSPS
    continuation = "ssps_paper" if paper else "ssps"  # a weak verdict still shows the agreement gate
    assert set(summary["results"]) == {"baseline", continuation}
    ssps = summary["results"][continuation]
    assert 0.0 <= ssps["cross"]["eer_percent"] <= 100.0
    assert ssps["ssps/coverage"] is not None and ssps["ssps/coverage"] > 0
    assert summary["results"]["baseline"]["ssps/coverage"] is None
    corpus = json.loads((tmp_path / "demo" / "corpus" / "corpus.json").read_text())
    assert corpus["mfcc_eer_same_session_percent"] < corpus["mfcc_eer_cross_session_percent"]  # channel bias
    folder = tmp_path / "demo" / "model"
    assert json.loads((folder / "config.json").read_text())["auto_map"]["AutoModel"].endswith("SSPSModel")
    assert "(recommended) |" in result.stdout and "the paper's SSPS is likely to" in result.stdout
    assert 0.0 <= summary["diagnosis"]["seed_agreement"] <= 1.0


@pytest.mark.parametrize("backend", ["synth", "tts"])
def test_demo_corpus_layout_trials_and_channel_bias(backend, tmp_path) -> None:
    result = script("scripts/make_demo_corpus.py", "--output_dir", str(tmp_path), "--preset", "tiny", "--backend", backend, "--num_workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "corpus.json").read_text())
    assert report["backend"] == backend
    assert report["train_utterances"] == 48 and report["test_utterances"] == 24
    files = sorted((tmp_path / "train" / "wav").glob("*/*/*.wav"))
    assert len(files) == 48 and soundfile.info(files[0]).samplerate == 16000
    train_speakers = {p.parts[-3] for p in files}
    test_speakers = {p.parts[-3] for p in (tmp_path / "test" / "wav").glob("*/*/*.wav")}
    assert not train_speakers & test_speakers
    for line in (tmp_path / "test" / "trials_cross_session.txt").read_text().splitlines():
        label, a, b = line.split()
        if label == "1":
            assert a.split("/")[0] == b.split("/")[0] and a.split("/")[1] != b.split("/")[1]  # other session
    # the channel bias the corpus exists to show: same-session targets are easy for MFCC means
    assert report["mfcc_eer_same_session_percent"] < report["mfcc_eer_cross_session_percent"]
    # deterministic by seed
    again = script("scripts/make_demo_corpus.py", "--output_dir", str(tmp_path / "again"), "--preset", "tiny", "--backend", backend)
    assert again.returncode == 0
    first = soundfile.read(files[0])[0]
    second = soundfile.read(tmp_path / "again" / files[0].relative_to(tmp_path))[0]
    np.testing.assert_array_equal(first, second)


def test_analyze_embeddings_reports_every_analysis(tmp_path, tiny_wav_rows) -> None:
    from modeling_ssps import SSPSConfig, SSPSModel

    rows = dict(tiny_wav_rows)
    rows["speaker_id"] = [f"id{s}" for s in rows["speaker_id"]]
    rows["video_id"] = ["v0" for _ in rows["video_id"]]  # one session per speaker: both probes have 2 examples per class
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / "data"))
    SSPSModel(SSPSConfig(encoder_type="fast_resnet34", resnet_channels=(4, 8, 8, 16), resnet_layers=(1, 1, 1, 1), embedding_dim=16)).save_pretrained(tmp_path / "model")
    result = script("scripts/analyze_embeddings.py", "--models", str(tmp_path / "model"), "--dataset", str(tmp_path / "data"),
                    "--output_dir", str(tmp_path / "analysis"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "analysis" / "analysis.json").read_text())[str(tmp_path / "model")]
    assert set(report) == {"intra_speaker_cosine", "inter_speaker_cosine", "speaker_probe_accuracy",
                           "session_probe_accuracy", "nmi_speaker", "nmi_session"}  # fmt: skip
    assert all(-1.0 <= v <= 1.0 for v in report.values())
    assert (tmp_path / "analysis" / "similarities.png").exists()


@pytest.mark.slow
def test_same_command_and_seed_give_the_same_run(tmp_path, tiny_wav_rows) -> None:
    """train.py twice with --seed 1717: identical logged losses and bit-identical weights (the
    model is built after the seed is set; crops, augmentation and SSPS draws are seeded)."""
    from safetensors.torch import load_file

    Dataset.from_dict(tiny_wav_rows).save_to_disk(str(tmp_path / "data"))
    runs = []
    for name in ("a", "b"):
        result = script("scripts/train.py", "--method", "simclr", "--encoder", "fast_resnet34", "--dataset", str(tmp_path / "data"),
                        "--resnet_channels", "4,8,8,16", "--resnet_layers", "1,1,1,1", "--per_device_train_batch_size", "4",
                        "--max_steps", "4", "--logging_steps", "1", "--save_steps", "4", "--report_to", "none", "--use_cpu",
                        "--disable_tqdm", "true", "--dataloader_num_workers", "0", "--augment", "none", "--crop_seconds", "0.5",
                        "--seed", "1717", "--output_dir", str(tmp_path / name))  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        state = json.loads((tmp_path / name / "checkpoint-4" / "trainer_state.json").read_text())
        runs.append(([h["loss"] for h in state["log_history"] if "loss" in h], load_file(str(tmp_path / name / "final" / "model.safetensors"))))
    (losses_a, weights_a), (losses_b, weights_b) = runs
    assert len(losses_a) == 4 and losses_a == losses_b
    assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_prepare_never_reuses_stale_work_and_lists_what_it_ignores(tmp_path, rng) -> None:
    """Re-running after files were added/removed, or with another --shard_size, rebuilds the
    affected work shards (fingerprints), and files at the wrong depth or with an unknown suffix
    are listed in the report, not silently ignored."""
    tree = tmp_path / "tree"
    for k in range(5):
        (tree / f"id{k % 2}" / "v1").mkdir(parents=True, exist_ok=True)
        soundfile.write(tree / f"id{k % 2}" / "v1" / f"{k:05d}.wav", synthetic_voice(rng, 12000, 100.0 + 20 * k), 16000)
    (tree / "stray.wav").write_bytes(b"x")
    (tree / "id0" / "v1" / "notes.txt").write_text("not audio")
    command = ["scripts/prepare_voxceleb.py", "--train_root", str(tree), "--output_dir", str(tmp_path / "out"), "--shard_size", "2", "--num_workers", "1"]
    assert script(*command).returncode == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())["train"]
    assert report["rows"] == 5 and len(report["ignored"]) == 2
    assert any("stray.wav" in i and "depth" in i for i in report["ignored"]) and any("notes.txt" in i and "suffix" in i for i in report["ignored"])
    (tree / "id0" / "v1" / "00000.wav").unlink()
    soundfile.write(tree / "id1" / "v1" / "00009.wav", synthetic_voice(rng, 12000), 16000)
    again = script(*command)
    assert again.returncode == 0 and "stale" in again.stdout
    names = load_from_disk(str(tmp_path / "out" / "train"))["utt_id"]
    assert "id0/v1/00000.wav" not in names and "id1/v1/00009.wav" in names and len(names) == 5
    larger = script(*command[:-4], "--shard_size", "3", "--num_workers", "1")
    assert larger.returncode == 0
    assert load_from_disk(str(tmp_path / "out" / "train"))["utt_id"] == names
    assert len(list((tmp_path / "out" / "_work" / "train").glob("shard-*"))) == 2
