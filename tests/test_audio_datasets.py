"""Standard 🤗 audio datasets as the toolkit's input (ssps_trainers/audio_datasets.py): files at another
rate, an audiofolder with metadata, parquet shards in the push_to_hub layout streamed, and trial
lists scored straight from a folder of files. Each trains a few steps and evaluates."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import synthetic_voice
from datasets import Audio, Dataset
from datasets.table import embed_table_storage
from test_ssl_trainer import tiny_config

from modeling_ssps import SSPSForPreTraining, SSPSModel
from ssps_trainers import MultiViewCollator, SSLTrainer, SSLTrainingArguments
from ssps_trainers.audio_datasets import DatasetColumns, files_dataset, load_audio_dataset, position_indexed, standardize, utterance_names
from ssps_trainers.data import AudioDecodeError, decode_audio

REPO = Path(__file__).resolve().parents[1]


def write_corpus(root: Path, rate: int, rng, suffix: str = ".wav") -> list[str]:
    """3 speakers x 2 sessions x 2 utterances of 1.2 s at `rate`, VoxCeleb-style names."""
    names = []
    for s, f0 in enumerate((110.0, 170.0, 240.0)):
        for v in range(2):
            for u in range(2):
                name = f"id{s}/vid{v}/{u:05d}{suffix}"
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                wave = synthetic_voice(rng, int(1.2 * 16000), f0 * (1 + 0.03 * v))
                if rate != 16000:
                    wave = np.interp(np.arange(int(1.2 * rate)) * 16000 / rate, np.arange(wave.size), wave).astype(np.float32)
                soundfile.write(root / name, wave, rate)
                names.append(name)
    return names


def trials(names: list[str]) -> list[tuple[int, str, str]]:
    return [(int(a.split("/")[0] == b.split("/")[0]), a, b) for i, a in enumerate(names) for b in names[i + 1 :] if a.split("/")[1] != b.split("/")[1] or a.split("/")[0] != b.split("/")[0]]


def train_and_evaluate(dataset, eval_dataset, trial_list, output: Path, streaming: bool = False) -> dict:
    args = SSLTrainingArguments(
        output_dir=str(output), method="simclr", per_device_train_batch_size=6, max_steps=4, num_train_samples=12,
        logging_steps=1, save_steps=100, report_to=[], use_cpu=True, disable_tqdm=True, ssps=True,
        ssps_start_epoch=1, ssps_num_clusters=3, ssps_queue_size=12, ignore_data_skip=True, dataloader_num_workers=0,
    )  # fmt: skip
    collator = MultiViewCollator(crop_samples=8000, reference_samples=12000)
    if streaming:
        collator.epoch = None
        dataset = dataset.repeat(None)
    torch.manual_seed(0)
    trainer = SSLTrainer(model=SSPSForPreTraining(tiny_config("simclr")), args=args, train_dataset=dataset,
                         data_collator=collator, eval_dataset=eval_dataset, eval_trials=trial_list)  # fmt: skip
    trainer.train()
    assert trainer.state.global_step == 4  # epoch 1 (steps 3-4) samples pseudo-positives
    assert any("ssps/coverage" in h for h in trainer.state.log_history)  # SSPS ran on the derived sample_index
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["eval_eer"] <= 1.0
    return metrics


def test_audio_feature_at_44k_is_resampled_by_the_library(tmp_path, rng) -> None:
    names = write_corpus(tmp_path, 44100, rng)
    dataset = Dataset.from_dict({"audio": [str(tmp_path / n) for n in names], "speaker_id": [n.split("/")[0] for n in names],
                                 "utt_id": names}).cast_column("audio", Audio())  # fmt: skip
    standard = standardize(dataset, 16000)
    assert standard.column_names == ["audio", "speaker_id", "utt_id", "sample_index"]
    assert standard["sample_index"] == list(range(12))
    wave = decode_audio(standard[0], 16000)
    assert abs(wave.size - int(1.2 * 16000)) <= 2  # 1.2 s at 16 kHz
    # analytic: a 1 kHz tone at 44.1 kHz decodes to a 1 kHz tone at 16 kHz
    t = np.arange(44100) / 44100
    soundfile.write(tmp_path / "tone.wav", (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), 44100)
    tone = decode_audio({"audio": {"bytes": None, "path": str(tmp_path / "tone.wav")}}, 16000)
    spectrum = np.abs(np.fft.rfft(tone[2000:14000]))
    assert abs(np.argmax(spectrum) * 16000 / 12000 - 1000) < 3
    train_and_evaluate(standard, standard, trials(names), tmp_path / "run")


def test_audiofolder_with_speaker_metadata(tmp_path, rng) -> None:
    folder = tmp_path / "corpus"
    names = write_corpus(folder, 22050, rng, suffix=".flac")
    (folder / "metadata.csv").write_text("file_name,speaker,session\n" + "".join(f"{n},{n.split('/')[0]},{n.split('/')[1]}\n" for n in names))
    raw = load_audio_dataset(folder)
    assert isinstance(raw.features["audio"], Audio) and "speaker" in raw.column_names
    columns = DatasetColumns(speaker_column="speaker", video_column="session")
    standard = standardize(raw, 16000, columns)
    assert set(standard.column_names) == {"audio", "speaker_id", "video_id", "sample_index"}
    assert sorted(utterance_names(standard, names)) == sorted(names)  # trial names from file paths
    train_and_evaluate(standard, standard, trials(names), tmp_path / "run")


def test_streamed_parquet_in_the_push_to_hub_layout(tmp_path, rng) -> None:
    names = write_corpus(tmp_path / "wav", 16000, rng)
    dataset = Dataset.from_dict({"audio": [str(tmp_path / "wav" / n) for n in names], "utt_id": names}).cast_column("audio", Audio())
    hub = tmp_path / "hub" / "data"
    hub.mkdir(parents=True)
    for shard in range(2):  # what push_to_hub writes: bytes embedded (its own embed_table_storage), its file names
        embedded = dataset.shard(2, shard, contiguous=True).with_format("arrow").map(embed_table_storage, batched=True)
        embedded.to_parquet(str(hub / f"train-{shard:05d}-of-00002.parquet"))
    (tmp_path / "wav").rename(tmp_path / "gone")  # nothing may be read from the original files
    stream = load_audio_dataset(tmp_path / "hub", streaming=True)
    assert position_indexed(stream)  # no index column: numbered by position in the stream
    standard = standardize(stream, 16000, num_samples=12)
    assert [row["sample_index"] for row in standard] == list(range(12))
    assert [row["utt_id"] for row in standard] == names  # shard order is the stream order
    evaluation = standardize(load_audio_dataset(tmp_path / "hub"), 16000)
    train_and_evaluate(standard, evaluation, trials(names), tmp_path / "run", streaming=True)
    with pytest.raises(ValueError, match="more than --num_train_samples=5"):
        list(standardize(load_audio_dataset(tmp_path / "hub", streaming=True), 16000, num_samples=5))


def test_bad_datasets_are_named(tmp_path) -> None:
    with pytest.raises(ValueError, match="no audio column 'audio'.*pass --audio_column"):
        standardize(Dataset.from_dict({"wav": ["a.wav"]}), 16000)
    with pytest.raises(ValueError, match="column 'audio' is .*not audio"):
        standardize(Dataset.from_dict({"audio": [1, 2]}), 16000)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_audio_dataset(tmp_path / "missing")
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    broken = standardize(Dataset.from_dict({"audio": [str(tmp_path / "bad.wav")], "utt_id": ["spk/bad.wav"]}), 16000)
    with pytest.raises(AudioDecodeError, match="spk/bad.wav: cannot decode audio"):
        MultiViewCollator(crop_samples=800)([broken[0]])
    with pytest.raises(FileNotFoundError, match="1 of 2 files are not under"):
        files_dataset(tmp_path, ["bad.wav", "nope.wav"])


def test_evaluate_sv_scores_a_folder_of_files_without_prepare(tmp_path, rng) -> None:
    names = write_corpus(tmp_path / "wav", 16000, rng)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(tmp_path / "wav" / names[0]), "-c:a", "aac",
                    str(tmp_path / "wav" / names[0].replace(".wav", ".m4a"))], check=True)  # fmt: skip
    names[0] = names[0].replace(".wav", ".m4a")
    trial_file = tmp_path / "trials.txt"
    trial_file.write_text("".join(f"{label} {a} {b}\n" for label, a, b in trials(names)))
    torch.manual_seed(0)
    SSPSModel(tiny_config("simclr")).save_pretrained(tmp_path / "model")
    command = [sys.executable, "scripts/evaluate_sv.py", "--model", str(tmp_path / "model"), "--audio_root", str(tmp_path / "wav"),
               "--trials", str(trial_file), "--output_dir", str(tmp_path / "eval"), "--no_plots", "--device", "cpu"]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "eval" / "report.json").read_text())["lists"]["trials.txt"]
    assert report["trials"] == len(trials(names)) and 0 <= report["eer_percent"] <= 100
    trial_file.write_text("1 id0/vid0/00001.wav id9/none.wav\n")
    missing = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert missing.returncode != 0 and "id9/none.wav" in missing.stderr and "Traceback" not in missing.stderr
