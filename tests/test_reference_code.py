"""The bench's harness for the reference implementation's code (diffsep/bench/reference_code.py):
weights in the reference layout, stand-ins equal to our STFT, importing a checkout without
torchaudio / hydra / a CUDA build and leaving the process as it was."""
import sys

import pytest
import torch
import torch.utils.cpp_extension

from diffsep.bench import reference_code as rc
from diffsep.core import spectral
from diffsep.nets.ncsnpp import rename_reference_keys
from diffsep.nets.spectral_unet import SpectralUNet


def test_weights_in_the_reference_layout_convert_back_to_ours():
    torch.manual_seed(0)
    net = SpectralUNet(n_src=2, nf=8, ch_mult=(1, 2, 2), attn_resolutions=(128,), init_scale=1.0)
    ref = rc.reference_weights_of(net)
    assert all(k.startswith(("backbone.all_modules.", "backbone.output_layer.")) for k in ref)
    back = rename_reference_keys({k.removeprefix("backbone."): v for k, v in ref.items()},
                                 net.backbone.reference_module_names())
    ours = net.backbone.state_dict()
    assert back.keys() == ours.keys() and all(torch.equal(back[k], ours[k]) for k in ours)


def test_the_stand_in_spectrograms_are_our_stft():
    x = torch.randn(2, 3, 5000)
    X = rc._Spectrogram(n_fft=510, hop_length=128, center=True, pad_mode="constant")(x)
    torch.testing.assert_close(X, spectral.stft(x, 510, 128), rtol=0, atol=0)
    y = rc._InverseSpectrogram(n_fft=510, hop_length=128, center=True, pad_mode="constant")(X, 5000)
    torch.testing.assert_close(y, spectral.istft(X, 510, 128, length=5000), rtol=0, atol=0)


FAKE = '''
torchaudio = __import__("torchaudio.transforms")  # the checkout imports torchaudio
from hydra.utils import instantiate
from torch.utils.cpp_extension import load

op = load("upfirdn2d", sources=["kernel.cu"])  # the reference builds its CUDA ops at import


class ScoreModelNCSNpp:
    def __init__(self, backbone_args, **kw):
        self.backbone = instantiate(backbone_args)
        self.stft = torchaudio.transforms.Spectrogram(power=None, n_fft=510, hop_length=128)
'''


def test_a_checkout_imports_with_stand_ins_and_leaves_the_process_as_it_was(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("")
    (tmp_path / "models" / "score_models.py").write_text(FAKE)
    (tmp_path / "models" / "ncsnpp.py").write_text("class NCSNpp:\n    def __init__(self, nf):\n        self.nf = nf\n")
    path, load, modules = list(sys.path), torch.utils.cpp_extension.load, set(sys.modules)
    try:
        mod = rc.load_reference_module(tmp_path)
        with rc._importable(tmp_path):
            model = mod.ScoreModelNCSNpp(backbone_args={"_target_": "models.ncsnpp.NCSNpp", "nf": 5})
        assert model.backbone.nf == 5 and isinstance(model.stft, torch.nn.Module)
        assert "not built" in mod.op.name
        assert sys.path == path and torch.utils.cpp_extension.load is load
        assert not {"torchaudio", "hydra", "hydra.utils"} & (set(sys.modules) - modules)
    finally:
        for name in set(sys.modules) - modules:
            if name == "models" or name.startswith("models."):
                del sys.modules[name]


def test_a_folder_that_is_no_checkout_is_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="not a checkout of the reference DiffSep code"):
        rc.load_reference_module(tmp_path)
