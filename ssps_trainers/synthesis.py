"""Synthetic speakers and recording channels for the embedded demo corpus and the tests.

A speaker is a source-filter voice: a glottal pulse train (speaker F0, jitter, shimmer, spectral
tilt) through vowel formant resonators scaled by the speaker's vocal-tract length and shaped
by per-formant offsets and a bandwidth scale of the speaker's own, with unvoiced
fricative bursts and pauses at the speaker's rate. A session ("video") is a recording channel
shared by all of its utterances: a simulated room impulse response (image method via
pyroomacoustics when installed, else an exponentially decaying noise tail), a band-limiting
EQ, stationary noise of one type at one SNR, and a gain. Same-utterance crops therefore share
the channel exactly as VoxCeleb crops do, which is the bias SSPS removes.

Everything is numpy/scipy and deterministic given a `numpy.random.Generator`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from .corpus import SAMPLING_RATE

# (F1, F2, F3) of adult-male vowels, Hz (Peterson & Barney, 1952, rounded)
VOWELS = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480],
     [570, 840, 2410], [660, 1720, 2410], [490, 1350, 1690], [440, 1020, 2240]],
    dtype=np.float64,
)  # fmt: skip
NOISE_TYPES = ("white", "pink", "brown", "hum", "babble")


@dataclass(frozen=True)
class Voice:
    """Speaker parameters."""

    f0: float  # mean fundamental frequency, Hz
    vocal_tract: float  # formant scale (about 1 / vocal-tract length)
    tilt: float  # glottal low-pass pole (0.90 bright .. 0.99 dark)
    jitter: float  # relative F0 perturbation per period
    shimmer: float  # relative amplitude perturbation per period
    rate: float  # syllables per second
    breathiness: float  # aspiration noise level
    vowel_bias: tuple[float, ...]  # speaker-specific preference over vowels (idiolect)
    formant_shift: tuple[float, ...]  # per-formant scale (F1-F4): vowel-space shape
    bandwidth: float  # formant bandwidth scale (damping of the tract)


@dataclass(frozen=True)
class Channel:
    """Session (recording) parameters."""

    rir: np.ndarray
    low_hz: float
    high_hz: float
    noise_type: str
    snr_db: float
    gain: float


def random_voice(rng: np.random.Generator, spread: float = 1.0) -> Voice:
    """A random speaker; `spread` scales how far speakers differ in formant shape and
    damping (1: the demo corpus; smaller: a harder corpus of more similar voices)."""
    female = rng.random() < 0.5
    f0 = rng.uniform(165, 255) if female else rng.uniform(85, 155)
    tract = rng.uniform(1.08, 1.25) if female else rng.uniform(0.88, 1.06)
    bias = rng.dirichlet(np.full(len(VOWELS), 2.0))
    # real speakers differ in the shape of their vowel space, not only in its overall scale:
    # each formant gets its own speaker offset (up to +-18 %), and the tract its own damping
    shift = 1.0 + spread * rng.uniform(-0.18, 0.18, size=4)
    return Voice(
        f0=float(f0), vocal_tract=float(tract), tilt=float(rng.uniform(0.90, 0.985)),
        jitter=float(rng.uniform(0.003, 0.02)), shimmer=float(rng.uniform(0.02, 0.12)),
        rate=float(rng.uniform(3.0, 5.5)), breathiness=float(rng.uniform(0.0, 0.08)),
        vowel_bias=tuple(float(b) for b in bias), formant_shift=tuple(float(v) for v in shift),
        bandwidth=float(1.25 + spread * rng.uniform(-0.75, 0.75)),
    )  # fmt: skip


def room_rir(rng: np.random.Generator) -> np.ndarray:
    try:
        import pyroomacoustics as pra
    except ImportError:
        pra = None
    rt60 = rng.uniform(0.1, 0.6)
    if pra is not None:
        for _ in range(20):  # a short RT60 is infeasible in a large room: draw the room again
            size = rng.uniform([3.0, 3.0, 2.4], [3.0 + 12 * rt60, 3.0 + 9 * rt60, 2.6 + 2 * rt60])
            try:
                absorption, max_order = pra.inverse_sabine(rt60, size)
                break
            except ValueError:
                continue
        else:
            pra = None
    if pra is not None:
        room = pra.ShoeBox(size, fs=SAMPLING_RATE, materials=pra.Material(absorption), max_order=min(max_order, 12))
        room.add_source(rng.uniform([0.5, 0.5, 1.0], size - 0.5))
        room.add_microphone(rng.uniform([0.5, 0.5, 0.8], size - 0.5))
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float64)
    else:  # direct path + exponentially decaying diffuse tail
        n = int(rt60 * SAMPLING_RATE)
        rir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n) * 0.3
        rir[0] = 1.0
    return (rir / np.linalg.norm(rir)).astype(np.float32)


def random_channel(rng: np.random.Generator) -> Channel:
    narrow = rng.random() < 0.2  # telephone-like or wideband microphone
    low = rng.uniform(200, 400) if narrow else rng.uniform(40, 150)
    high = rng.uniform(3000, 4000) if narrow else rng.uniform(5500, 7800)
    return Channel(
        rir=room_rir(rng), low_hz=float(low), high_hz=float(high),
        noise_type=NOISE_TYPES[int(rng.integers(len(NOISE_TYPES)))],
        snr_db=float(rng.uniform(10, 30)), gain=float(10 ** (rng.uniform(-12, 0) / 20)),
    )  # fmt: skip


def _resonator(frequency: float, bandwidth: float) -> tuple[np.ndarray, np.ndarray]:
    """Second-order all-pole resonator at `frequency` with `bandwidth` (Hz), unit DC gain."""
    r = np.exp(-np.pi * bandwidth / SAMPLING_RATE)
    theta = 2 * np.pi * frequency / SAMPLING_RATE
    a = np.array([1.0, -2 * r * np.cos(theta), r * r])
    return np.array([a.sum()]), a


def _syllable(voice: Voice, vowel: np.ndarray, n: int, f0_start: float, f0_end: float,
              rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    # F0 contour with per-period jitter, integrated into a phase; a pulse at each wrap
    f0 = np.linspace(f0_start, f0_end, n) * (1 + voice.jitter * rng.standard_normal(n).cumsum() / np.sqrt(np.arange(1, n + 1)))
    phase = np.cumsum(np.clip(f0, 50, 400) / SAMPLING_RATE)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    pulses *= 1 + voice.shimmer * rng.standard_normal(n)
    source = signal.lfilter([1.0 - voice.tilt], [1.0, -voice.tilt], pulses)  # spectral tilt
    source += voice.breathiness * rng.standard_normal(n) * np.abs(source).max()
    out = source
    formants = np.append(vowel, 3500.0) * voice.vocal_tract * np.asarray(voice.formant_shift)
    for k, frequency in enumerate(formants):
        b, a = _resonator(min(frequency, 7600.0), (60.0 + 40.0 * k) * voice.bandwidth)
        out = signal.lfilter(b, a, out)
    envelope = np.sin(np.linspace(0, np.pi, n)) ** 0.5
    return out * envelope


def _fricative(n: int, rng: np.random.Generator, voice: Voice) -> np.ndarray:
    centre = rng.uniform(2500, 6500) * voice.vocal_tract
    b, a = signal.butter(2, [min(centre * 0.7, 7000) / 8000, min(centre * 1.3, 7900) / 8000], btype="band")
    return signal.lfilter(b, a, rng.standard_normal(n)) * np.hanning(n) * 0.3


def speak(voice: Voice, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A clean utterance of about `seconds`, peak-normalised to 0.5."""
    total = int(seconds * SAMPLING_RATE)
    pieces: list[np.ndarray] = []
    length = 0
    f0 = voice.f0 * rng.uniform(0.92, 1.08)
    probabilities = np.asarray(voice.vowel_bias)
    while length < total:
        syllable = int(SAMPLING_RATE / voice.rate * rng.uniform(0.6, 1.3))
        if rng.random() < 0.35:
            burst = int(syllable * rng.uniform(0.2, 0.4))
            pieces.append(_fricative(burst, rng, voice))
            length += burst
        vowel = VOWELS[rng.choice(len(VOWELS), p=probabilities)]
        f0_next = f0 * rng.uniform(0.9, 1.08)
        pieces.append(_syllable(voice, vowel, syllable, f0, f0_next, rng))
        length += syllable
        f0 = 0.98 * f0_next + 0.02 * voice.f0  # declination, pulled back to the speaker's F0
        if rng.random() < 0.15:
            pause = int(rng.uniform(0.08, 0.3) * SAMPLING_RATE)
            pieces.append(np.zeros(pause))
            length += pause
    wave = np.concatenate(pieces)[:total]
    return (0.5 * wave / max(np.abs(wave).max(), 1e-9)).astype(np.float32)


def noise_signal(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    if kind == "pink":
        return signal.lfilter([0.049922, -0.095993, 0.050612, -0.004408], [1, -2.494956, 2.017265, -0.522189], white)
    if kind == "brown":
        return signal.lfilter([1.0], [1.0, -0.995], white)
    if kind == "hum":
        t = np.arange(n) / SAMPLING_RATE
        base = rng.choice([50.0, 60.0])
        return sum(np.sin(2 * np.pi * base * h * t + rng.uniform(0, 6.28)) / h for h in range(1, 6)) + 0.05 * white
    # babble: several unrelated synthetic talkers, each cut or wrap-padded to exactly n samples
    return sum(np.resize(speak(random_voice(rng), n / SAMPLING_RATE + 0.01, rng), n).astype(np.float64) for _ in range(4))


def record(clean: np.ndarray, channel: Channel, rng: np.random.Generator) -> np.ndarray:
    """Pass a clean utterance through a session's channel: room, EQ, noise, gain."""
    wet = signal.fftconvolve(clean, channel.rir)[: clean.shape[0]]
    b, a = signal.butter(4, [channel.low_hz / 8000, channel.high_hz / 8000], btype="band")
    wet = signal.lfilter(b, a, wet)
    noise = noise_signal(channel.noise_type, wet.shape[0], rng)
    speech_power = np.mean(wet**2) + 1e-12
    noise_power = np.mean(noise**2) + 1e-12
    wet = wet + noise * np.sqrt(speech_power / noise_power / 10 ** (channel.snr_db / 10))
    wet = channel.gain * 0.9 * wet / max(np.abs(wet).max(), 1e-9)
    return wet.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Text-to-speech backend (optional): espeak-ng voices varied into several speakers
# --------------------------------------------------------------------------------------------

WORDS = (
    "the a my your our this that every some old new small large quiet bright early late river "
    "garden window morning evening letter story music city winter summer teacher doctor friend "
    "brother sister village market train station kitchen table paper answer question picture "
    "walks reads writes sings opens closes finds brings takes makes keeps holds watches follows "
    "slowly quickly always never often together again outside inside before after today tomorrow"
).split()


@dataclass(frozen=True)
class TTSVoice:
    """An espeak-ng speaker: a voice variant (the "person") plus pitch, rate and formant scale."""

    variant: str
    pitch: int  # espeak-ng -p, 0-99
    speed: int  # espeak-ng -s, words per minute
    formant: float  # resampling factor: > 1 raises formants (shorter vocal tract)


def tts_available() -> bool:
    import shutil

    return shutil.which("espeak-ng") is not None


def tts_variants() -> list[str]:
    """Installed espeak-ng variants (each a distinct synthetic person), sorted."""
    import subprocess

    listing = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = [line.split()[4].split("/")[-1] for line in listing.splitlines()[1:] if len(line.split()) >= 5]
    return sorted(set(names))


def tts_speak(voice: TTSVoice, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Pseudo-sentences read by espeak-ng, formant-shifted, at 16 kHz, cut or padded to length."""
    import io
    import subprocess

    import soundfile

    words = " ".join(WORDS[i] for i in rng.integers(len(WORDS), size=max(4, int(seconds * 3.2))))
    result = subprocess.run(
        ["espeak-ng", "-v", f"en-us+{voice.variant}", "-p", str(voice.pitch), "-s", str(voice.speed), "--stdout", words],
        capture_output=True, check=True,
    )  # fmt: skip
    wave, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float64")
    # resample to 16 kHz / formant: played back at 16 kHz, formants (and F0) scale by `formant`;
    # espeak's -p sets F0 independently, so the pair moves vocal tract and pitch separately
    target = int(round(wave.shape[0] * SAMPLING_RATE / rate / voice.formant))
    wave = signal.resample(wave, target)
    total = int(seconds * SAMPLING_RATE)
    wave = np.resize(wave, total) if wave.shape[0] < total else wave[:total]
    peak = float(np.abs(wave).max())
    if peak < 1e-4:
        raise RuntimeError(f"espeak-ng voice {voice.variant} produced silence")
    return (0.5 * wave / peak).astype(np.float32)
