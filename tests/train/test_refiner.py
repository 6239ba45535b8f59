import shutil

import numpy as np
import torch

from kinema.models.refiner import WINDOW, PictureRefiner
from kinema.pipelines.loading import load
from kinema.train.refiner import RefinerSettings, build_pairs, edge_weights, export, train_refiner
from kinema.train.stages import load_vae

QUICK = RefinerSettings(clips=3, size=32, steps=4, lr=1e-3, warmup=1, widths="8,8", checkpoint_every=2)


def _train(tmp_path, name, data, resume=False, until=None):
    out = tmp_path / name
    out.mkdir(exist_ok=True)
    return train_refiner(data, QUICK, out, resume, "test", say=lambda s: None, until=until), out


def test_a_refiner_starts_as_the_identity_and_works_in_windows():
    torch.manual_seed(0)
    refiner = PictureRefiner((8, 8, 8)).eval()
    clips = torch.rand(2, 3, 20, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(refiner(clips), clips)  # its last layer starts at zero
        torch.nn.init.normal_(refiner.out.weight, std=0.1)
        torch.nn.init.normal_(refiner.temporal.out.weight, std=0.1)
        whole = refiner(clips)
        # 20 frames are two windows of 10: each frame's correction depends on its window only
        first = refiner.refine_frames(clips[:, :, :10].transpose(1, 2).reshape(20, 3, 16, 16), 10)
        assert torch.allclose(whole[:, :, :10], first.reshape(2, 10, 3, 16, 16).transpose(1, 2).clamp(-1, 1))
        # and on the other frames of its window: the clip attention
        changed = clips.clone()
        changed[:, :, 9] = -changed[:, :, 9]
        assert not torch.allclose(refiner(changed)[:, :, 0], whole[:, :, 0])
        assert torch.equal(refiner(changed)[:, :, 10:], whole[:, :, 10:])
    assert WINDOW == 17


def test_edges_weigh_more():
    frame = -torch.ones(1, 3, 16, 16)
    frame[..., 6:10, 6:10] = 1.0
    weights = edge_weights(frame, 4.0)
    assert weights[0, 0, 8, 8] == 5.0 and weights[0, 0, 0, 0] == 1.0


def test_a_run_caches_its_pairs_resumes_exactly_and_exports_a_vae(tiny_model, tmp_path):
    vae = load_vae(tiny_model / "vae")
    data = build_pairs(vae, QUICK, tmp_path / "pairs.pt", say=lambda s: None)
    assert data["decoded"].shape == data["rendered"].shape == (3, 3, WINDOW, 32, 32)
    assert data["decoded"].dtype == torch.uint8 and not torch.equal(data["decoded"], data["rendered"])
    again = build_pairs(vae, QUICK, tmp_path / "pairs.pt", say=lambda s: None)
    assert torch.equal(again["decoded"], data["decoded"])  # read back, not made again

    whole, run = _train(tmp_path, "whole", data)
    _train(tmp_path, "halves", data, until=2)
    resumed, _ = _train(tmp_path, "halves", data, resume=True)
    for name, weight in whole.state_dict().items():
        assert torch.equal(weight, resumed.state_dict()[name]), name
    assert whole.out.weight.abs().sum() > 0  # it learned

    refined = export(run, tiny_model / "vae", tmp_path / "vae", say=lambda s: None)
    loaded = load_vae(refined)
    assert loaded.config.refiner == (8, 8)
    z = vae.encode(torch.from_numpy(data["rendered"][:1].numpy()).float() / 127.5 - 1)
    with torch.no_grad():
        assert torch.equal(loaded.decode_pictures(z, None), vae.decode(z))  # the decoder is the source's
        assert not torch.equal(loaded.decode(z), vae.decode(z))  # and the refiner acts after it

    # a model folder with that VAE generates through it
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    shutil.rmtree(folder / "vae")
    shutil.copytree(refined, folder / "vae")
    pipe = load(folder)
    assert pipe.vae.refiner is not None
    video = pipe("a red circle moving right on a black background", frames=8, size=32, steps=2, seed=1)
    assert video.frames.shape == (8, 32, 32, 3) and np.ptp(video.frames) > 0
