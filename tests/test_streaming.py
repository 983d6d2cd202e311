"""Separation of files in blocks (diffsep.inference.streaming): the same outputs as separating the
whole signal, of the input's length exactly, in working memory that does not grow with it."""
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch

from diffsep.cli.separate import Job, build_parser, separate_file
from diffsep.inference.file_separation import load_mixture
from diffsep.inference.loading import NonFiniteEstimate, separate_signal
from diffsep.inference.separator import Separator, separate
from diffsep.inference.streaming import StreamingSeparation, separate_to_files
from diffsep.storage.audio import AudioError, resample
from diffsep.storage.audio_blocks import BlockResampler


def shuffling(n_src=2, channels=1, rate=8000, seed=0):
    """A separator whose every call draws noise and a random source order from its generator: the
    streamed and the whole separation agree only if they make the same calls in the same order
    and align and cross-fade the chunks alike."""
    def estimate(mix, generator):  # (B, C, n) -> (B, K, C, n)
        gains = torch.arange(1, n_src + 1, dtype=torch.float32).view(1, n_src, 1, 1)
        est = mix[:, None] * gains + 0.1 * torch.randn(mix.shape[0], n_src, *mix.shape[1:], generator=generator)
        return est[:, torch.randperm(n_src, generator=generator)]
    return Separator(estimate, n_src, rate, channels=channels, generator=torch.Generator().manual_seed(seed))


def write(path, x, rate):
    sf.write(path, np.atleast_2d(np.asarray(x, dtype=np.float32)).T, rate, subtype="FLOAT")
    return path


def signal(n, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 8000
    return (0.3 * np.sin(2 * np.pi * 300 * t) + 0.2 * rng.standard_normal((channels, n))).astype(np.float32)


def read(paths):
    return np.stack([sf.read(p, dtype="float32", always_2d=True)[0].T for p in paths])  # (K, C, N)


@pytest.mark.parametrize("rate,file_ch,model_ch,downmix,batch", [
    (8000, 1, 1, False, 1), (11025, 1, 1, False, 2), (11025, 2, 1, True, 1),
    (8000, 2, 2, False, 3), (16000, 2, 2, False, 1), (11025, 1, 2, False, 1)])
def test_streamed_file_is_the_whole_signal_separation(tmp_path, rate, file_ch, model_ch, downmix, batch):
    n = int(0.61 * rate) + 7
    path = write(tmp_path / "mix.wav", signal(n, file_ch), rate)
    opts = dict(chunk_seconds=0.05, overlap_seconds=0.0125, batch_size=batch)
    outs = [tmp_path / "out" / f"s{k}.wav" for k in (1, 2)]
    separate_to_files(shuffling(channels=model_ch), path, outs, downmix=downmix, block_frames=331, **opts)
    got = read(outs)
    mix, sr = load_mixture(path, downmix, model_ch)
    want = separate_signal(shuffling(channels=model_ch), mix, sr, **opts).reshape(2, model_ch, -1)
    assert got.shape == want.shape == (2, model_ch, n)  # the input's length, exactly
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s1.wav", "s2.wav"]  # no temporaries


@pytest.mark.parametrize("out_rate", [8000, 22050])
def test_output_rate_and_length(tmp_path, out_rate):
    n = 11025 // 2 + 3
    path = write(tmp_path / "mix.wav", 0.3 * signal(n), 11025)  # within full scale (FLAC)
    outs = [tmp_path / f"s{k}.flac" for k in (1, 2)]
    separate_to_files(shuffling(), path, outs, out_rate=out_rate, chunk_seconds=0.1, overlap_seconds=0.02)
    want = separate_signal(shuffling(), load_mixture(path)[0], 11025, out_rate=out_rate,
                           chunk_seconds=0.1, overlap_seconds=0.02)
    got = read(outs)[:, 0]
    assert sf.info(outs[0]).samplerate == out_rate and got.shape == want.shape == (2, round(n * out_rate / 11025))
    np.testing.assert_allclose(got, want, atol=2e-4)  # 24-bit FLAC


def test_streaming_separation_equals_separate_for_any_blocks_chunks_and_batches():
    rng = np.random.default_rng(1)
    for trial in range(12):
        length, channels = int(rng.integers(2, 300)), int(rng.integers(1, 3))
        chunk = int(rng.integers(16, 80)) if trial % 4 else 0  # 0: whole
        overlap = int(rng.integers(0, chunk // 2 + 1))
        batch = int(rng.integers(1, 4))
        mix = torch.from_numpy(signal(length, channels, seed=trial))
        want, = separate(shuffling(3, channels, seed=trial), [mix], chunk=chunk, overlap=overlap, batch_size=batch)
        stream = StreamingSeparation(shuffling(3, channels, seed=trial), length, channels, chunk=chunk,
                                     overlap=overlap, batch_size=batch)
        cuts = np.sort(rng.integers(0, length + 1, int(rng.integers(0, 6))))
        parts = [stream.push(x) for x in np.split(mix.numpy(), cuts, axis=1)] + [stream.finish()]
        assert sum(p.shape[-1] for p in parts) == length
        np.testing.assert_allclose(torch.cat(parts, -1).numpy(), want.numpy(), atol=1e-6, rtol=1e-6,
                                   err_msg=f"length {length} chunk {chunk} overlap {overlap} batch {batch}")


def test_streaming_holds_a_few_chunks_not_the_signal():
    stream = StreamingSeparation(shuffling(), 20_000, 1, chunk=800, overlap=100, batch_size=2)
    held = 0
    for x in np.split(signal(20_000), range(500, 20_000, 500), axis=1):
        stream.push(x)
        held = max(held, stream._in.shape[-1] + sum(b.shape[-1] for b in stream._blocks), stream._out.shape[-1])
    stream.finish()
    assert held <= 2 * 800 + 500


def test_block_resampler_gives_the_whole_signals_samples():
    rng = np.random.default_rng(2)
    for sr_in, sr_out in [(44100, 8000), (8000, 44100), (11025, 16000), (8000, 8000)]:
        x = rng.standard_normal((2, int(rng.integers(1000, 5000)))).astype(np.float32)
        r = BlockResampler(sr_in, sr_out, 2)
        cuts = np.sort(rng.integers(0, x.shape[1], 5))
        y = np.concatenate([r.push(b) for b in np.split(x, cuts, axis=1)] + [r.finish()], 1)
        np.testing.assert_array_equal(y, resample(x, sr_in, sr_out))


def test_cli_memory_does_not_grow_with_the_files_length(tmp_path):
    """44.1 kHz stereo, downmixed for an 8 kHz model: the CLI's traced (numpy) peak for a 4x longer
    file stays put (it read, resampled and wrote whole files before: +0.9 MB per second)."""
    args = build_parser().parse_args(["x.wav", "-o", str(tmp_path), "--downmix", "--chunk-seconds", "1",
                                      "--overlap-seconds", "0.25"])
    peaks = []
    for seconds in (2, 8):
        path = write(tmp_path / f"in{seconds}.wav", signal(44100 * seconds, 2), 44100)
        outs = [tmp_path / f"s{k}" / f"{seconds}.wav" for k in (1, 2)]
        tracemalloc.start()
        separate_file(shuffling(), Job(path, f"{seconds}"), outs, args)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert sf.info(outs[0]).frames == 44100 * seconds
    assert peaks[1] - peaks[0] < 1e6, peaks


def test_bad_files_fail_before_any_output(tmp_path):
    outs = [tmp_path / "out" / f"s{k}.wav" for k in (1, 2)]
    cases = {"digital silence": np.zeros(4000), "NaN": np.r_[signal(3000)[0], np.nan, signal(999)[0]],
             "too short": signal(100)[0]}
    for i, (problem, x) in enumerate(cases.items()):
        with pytest.raises(AudioError, match=problem):
            separate_to_files(shuffling(), write(tmp_path / f"{i}.wav", x, 8000), outs)
    with pytest.raises(AudioError, match="2 channels; the model separates mono"):
        separate_to_files(shuffling(), write(tmp_path / "st.wav", signal(4000, 2), 8000), outs)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_non_finite_estimate_writes_nothing(tmp_path):
    def broken(mix, generator):
        est = mix[:, None].repeat(1, 2, 1, 1)
        est[..., -1] = float("nan")
        return est
    outs = [tmp_path / f"s{k}.wav" for k in (1, 2)]
    path = write(tmp_path / "mix.wav", signal(8000), 8000)
    with pytest.raises(NonFiniteEstimate, match="NaN or Inf"):
        separate_to_files(Separator(broken, 2, 8000), path, outs, chunk_seconds=0.2, overlap_seconds=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.wav"]
