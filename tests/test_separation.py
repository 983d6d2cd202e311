"""Chunked separation, alignment, overlap-add and rescaling."""
import pytest
import torch
from hypothesis import example, given, settings, strategies as st

from conftest import speech_like
from diffsep.core.normalization import normalize
from diffsep.core.sdr import si_sdr
from diffsep.core.sde import DiffSepSDE
from diffsep.samplers import SamplerSettings, sample
from diffsep.inference.separator import Separator, chunk_starts, ola_window, rescale, separate


class Oracle:
    """Returns the true sources of whatever chunk of ``mix`` it is given (found among ``starts``),
    optionally in swapped order for the chunks listed in ``swap``; records the largest input."""

    def __init__(self, sources, starts, swap=()):
        self.sources, self.mix = sources, sources.sum(0)
        self.starts, self.swap = starts, set(swap)
        self.n_src, self.sample_rate, self.max_numel, self.calls = sources.shape[0], 8000, 0, 0

    def _find(self, x):
        n = x.shape[-1]
        for c, s in enumerate(self.starts):
            if s + n <= self.mix.shape[-1] and torch.equal(self.mix[s:s + n], x):
                return c, s
        raise AssertionError("chunk not found")

    def __call__(self, mix):
        self.max_numel, self.calls = max(self.max_numel, mix.numel()), self.calls + 1
        out = []
        for x in mix[:, 0]:
            c, s = self._find(x)
            est = self.sources[:, s:s + x.shape[-1]]
            out.append(est.flip(0) if c in self.swap else est)
        return torch.stack(out)[:, :, None]  # (B, K, C = 1, n)


@given(n=st.integers(1, 3000), chunk=st.integers(50, 800), frac=st.floats(0.0, 0.9),
       batch=st.integers(1, 4))
@settings(max_examples=60, deadline=None)
@example(n=1336, chunk=50, frac=0.046875, batch=1)  # a 2-sample overlap: SI-SDR alignment failed here
def test_chunks_cover_the_input_and_overlap_add_is_exact(n, chunk, frac, batch):
    overlap = int(frac * chunk)
    starts = chunk_starts(n, chunk, overlap)
    assert starts[0] == 0 and starts[-1] + min(chunk, n) == n
    assert all(b - a <= chunk - overlap for a, b in zip(starts, starts[1:]))
    sources = speech_like(2, n, seed=n, dtype=torch.float32)[0]
    out, = separate(Oracle(sources, starts), [sources.sum(0)[None]], chunk=chunk, overlap=overlap,
                    batch_size=batch)
    assert out.shape == (2, 1, n)  # (K, C, N)
    torch.testing.assert_close(out[:, 0], sources, atol=1e-5, rtol=1e-5)


def test_swapped_chunks_are_realigned():
    n, chunk, overlap = 4000, 600, 150
    sources = speech_like(2, n, seed=3, dtype=torch.float32)[0]
    starts = chunk_starts(n, chunk, overlap)
    oracle = Oracle(sources, starts, swap=range(1, len(starts), 2))
    out, = separate(oracle, [sources.sum(0)[None]], chunk=chunk, overlap=overlap, batch_size=3)
    torch.testing.assert_close(out[:, 0], sources, atol=1e-5, rtol=1e-5)
    # without overlap nothing can be aligned: the check above is not vacuous
    oracle0 = Oracle(sources, chunk_starts(n, chunk, 0), swap=[1])
    out0, = separate(oracle0, [sources.sum(0)[None]], chunk=chunk, overlap=0)
    assert not torch.allclose(out0[:, 0], sources, atol=1e-3)


def test_working_memory_does_not_grow_with_the_number_of_chunks():
    seen = []
    for n in (2_000, 20_000, 80_000):
        sources = speech_like(2, n, seed=1, dtype=torch.float32)[0]
        oracle = Oracle(sources, chunk_starts(n, 1000, 200))
        separate(oracle, [sources.sum(0)[None]], chunk=1000, overlap=200, batch_size=2)
        seen.append((oracle.max_numel, oracle.calls))
    assert seen[0][0] == seen[1][0] == seen[2][0] == 2 * 1000
    assert seen[0][1] < seen[1][1] < seen[2][1]


def test_several_inputs_of_different_lengths_are_mini_batched():
    lengths = [700, 700, 2500, 300]
    srcs = [speech_like(2, n, seed=i, dtype=torch.float32)[0] for i, n in enumerate(lengths)]

    class Multi:
        n_src, sample_rate, calls = 2, 8000, []

        def __call__(self, mix):
            self.calls.append(mix.shape)
            out = []
            for x in mix[:, 0]:
                s = next(s for s in srcs for o in range(s.shape[-1] - x.shape[-1] + 1)
                         if torch.equal(s.sum(0)[o:o + x.shape[-1]], x))
                o = next(o for o in range(s.shape[-1] - x.shape[-1] + 1)
                         if torch.equal(s.sum(0)[o:o + x.shape[-1]], x))
                out.append(s[:, o:o + x.shape[-1]])
            return torch.stack(out)[:, :, None]

    m = Multi()
    outs = separate(m, [s.sum(0)[None] for s in srcs], chunk=1000, overlap=100, batch_size=4)
    for o, s in zip(outs, srcs):
        torch.testing.assert_close(o[:, 0], s, atol=1e-5, rtol=1e-5)
    assert m.calls[0][0] == 2  # the two 700-sample inputs went through together


class ExactScore(torch.nn.Module):
    """The oracle score of the chunk the sampler is working on (found by its normalised mix)."""

    def __init__(self, sde, sources, starts, n):
        super().__init__()
        self.sde, self.sources, self.starts, self.n = sde, sources[None], starts, n

    def _sources(self, mix):
        n = mix.shape[-1]
        for s in self.starts:
            full = self.sources[..., s:s + n][:, :, None]  # (1, K, 1, n)
            m, src, _, _ = normalize(full.sum(1), full)
            if torch.allclose(m[0], mix, atol=1e-5):
                return src[0, :, 0]
        raise AssertionError("chunk not found")

    def forward(self, x, t, mix):
        src = torch.stack([self._sources(m) for m in mix])
        return self.sde.exact_score(x, t, src)


def test_chunked_equals_whole_with_the_exact_score():
    torch.manual_seed(0)
    n, chunk, overlap = 8000, 3000, 800
    sde = DiffSepSDE(2)
    sources = speech_like(2, n, seed=5, dtype=torch.float32)[0]
    mix = sources.sum(0)
    opts = SamplerSettings(steps=30)
    results = []
    for c, o in ((0, 0), (chunk, overlap)):
        score = ExactScore(sde, sources, starts=chunk_starts(n, c, o), n=n)
        sep = Separator(lambda mix, g, score=score: sample(score, sde, mix, opts, generator=g)[:, :, None], 2,
                        8000, generator=torch.Generator().manual_seed(1))
        out, = separate(sep, [mix[None]], chunk=c, overlap=o, batch_size=2)
        results.append(out[:, 0])
    whole, chunked = results
    assert len(chunk_starts(n, chunk, overlap)) == 4
    assert si_sdr(whole, sources).min() > 35
    assert si_sdr(chunked, sources).min() > 35
    assert si_sdr(chunked, whole).min() > 35


def test_rescale_modes():
    g = torch.Generator().manual_seed(0)
    est, mix = torch.randn(3, 2, 1, 500, generator=g), torch.randn(3, 1, 500, generator=g)  # (B, K, C, n), (B, C, n)
    torch.testing.assert_close(rescale(est, mix, "mix_consistency").sum(1), mix)
    scaled = rescale(est, mix, "mix_projection")
    gain = scaled / est
    assert torch.allclose(gain, gain[..., :1].expand_as(gain), atol=1e-5)
    # the least-squares gain: residual orthogonal to the estimate
    assert torch.allclose(((mix[:, None] - scaled) * est).sum(-1), torch.zeros(3, 2, 1), atol=1e-3)
    assert torch.equal(rescale(est, mix, "denormalize"), est)
    with pytest.raises(ValueError, match="valid"):
        rescale(est, mix, "bogus")


def test_ola_window_is_positive_and_flat_inside():
    w = ola_window(100, 20, first=False, last=False)
    assert (w > 0).all() and torch.all(w[20:80] == 1) and w[0] < w[10] < 1
    assert torch.all(ola_window(100, 20, first=True, last=True) == 1)


class StereoOracle(Oracle):
    """The true stems (K, C, N) of whatever chunk of their stereo mixture it is given."""

    def __init__(self, stems, starts, swap=(), fixed_order=False):
        super().__init__(stems.flatten(1), starts, swap)  # chunks are found in the flattened sum
        self.stems, self.stereo_mix, self.fixed_order = stems, stems.sum(0), fixed_order
        self.n_src = stems.shape[0]

    def __call__(self, mix):
        out = []
        for x in mix:
            s = next(s for s in self.starts
                     if s + x.shape[-1] <= self.stereo_mix.shape[-1]
                     and torch.equal(self.stereo_mix[:, s:s + x.shape[-1]], x))
            est = self.stems[..., s:s + x.shape[-1]]
            out.append(est.flip(0) if self.starts.index(s) in self.swap else est)
        return torch.stack(out)


@pytest.mark.parametrize("n,chunk,overlap,batch", [(3000, 700, 100, 2), (999, 2000, 0, 1), (1301, 500, 499, 3)])
def test_stereo_stems_are_chunked_and_overlap_added_exactly(n, chunk, overlap, batch):
    stems = speech_like(4, 2 * n, seed=n, dtype=torch.float32)[0].reshape(4, 2, n)
    starts = chunk_starts(n, chunk, overlap)
    out, = separate(StereoOracle(stems, starts, swap=[1]), [stems.sum(0)], chunk=chunk, overlap=overlap,
                    batch_size=batch)
    assert out.shape == (4, 2, n)
    torch.testing.assert_close(out, stems, atol=1e-5, rtol=1e-5)  # the swapped chunk realigned


def test_fixed_order_separators_are_never_reordered():
    """A model with named stems (music, enhancement) keeps its order even where a chunk looks
    better aligned permuted."""
    n, chunk, overlap = 3000, 700, 100
    stems = speech_like(2, 2 * n, seed=1, dtype=torch.float32)[0].reshape(2, 2, n)
    starts = chunk_starts(n, chunk, overlap)
    out, = separate(StereoOracle(stems, starts, swap=[1], fixed_order=True), [stems.sum(0)],
                    chunk=chunk, overlap=overlap)
    inside = slice(starts[1] + overlap, starts[1] + chunk - overlap)  # chunk 1 alone
    torch.testing.assert_close(out[..., inside], stems.flip(0)[..., inside])


def test_stereo_rescale_is_per_channel():
    stems = torch.randn(1, 3, 2, 500)
    mix = stems.sum(1)
    est = stems * torch.tensor([1.0, 2.0])[:, None]  # channel 2 twice too loud
    fixed = rescale(est, mix, "mix_consistency")
    torch.testing.assert_close(fixed.sum(1), mix)
    one = mix[:, None] * torch.tensor([3.0, 0.5])[:, None]  # one source: each channel off by its own gain
    torch.testing.assert_close(rescale(one, mix, "mix_projection")[:, 0], mix)
