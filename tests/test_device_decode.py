"""DATASET.DECODE_ON_DEVICE: loader workers read file bytes; the trainer decodes (JPEG batched on the
device, other formats on the CPU) and applies the training view there. Tested on the CPU device."""

import pytest
import torch

from fake_trees import write_cub
from helpers import small_demo
from lavid_plugin.config import load_cfg
from lavid_plugin.errors import LavidError


def _cfg(root, kind="cub", *extra):
    return load_cfg(None, ["DATASET.TYPE", kind, "DATASET.ROOT", str(root), "DATASET.IMAGE_SIZE", "32",
                           "DATASET.NUM_WORKERS", "0", "DATASET.DECODE_ON_DEVICE", "True", "SOLVER.BATCH_SIZE", "4",
                           "DISTILLER.STUDENT", "resnet_tiny", "DISTILLER.TYPE", "NONE", *extra])


def test_the_loader_yields_file_bytes_and_the_decoder_the_training_view(tmp_path):
    from PIL import Image

    from lavid_plugin.data.device_decode import DeviceDecoder, EncodedBatch
    from lavid_plugin.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from lavid_plugin.engine.build import setup_data

    write_cub(tmp_path)
    run = setup_data(_cfg(tmp_path))
    data, target, index = next(iter(run.train_loader))
    assert isinstance(data, EncodedBatch) and len(data) == 4 and data[0].dtype == torch.uint8 and data[0].ndim == 1
    assert data.flat.numel() == sum(d.numel() for d in data)  # one tensor crosses from a worker, not four
    path = run.splits.train.samples[int(index[0])][0]
    assert bytes(data[0].tolist()) == open(path, "rb").read()  # the workers only read the file
    torch.manual_seed(0)
    x = DeviceDecoder(32, "cpu")(data, index)
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    # the fake JPEGs are one solid colour: any crop of one, normalised, is that colour
    rgb = torch.tensor(Image.open(path).convert("RGB").getpixel((20, 15)), dtype=torch.float32)
    want = (rgb / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(x[0].mean((1, 2)), want, atol=0.05, rtol=0)


def test_a_run_trains_with_decoding_on_device_png_and_jpeg(tmp_path):
    from lavid_plugin.engine.launch import train

    small_demo(tmp_path / "birds", train=1, test=1)  # PNGs: decoded on the CPU, then moved
    t = train(_cfg(tmp_path / "birds", "demo_birds", "SOLVER.EPOCHS", "1", "LOG.PREFIX", str(tmp_path / "out"),
                   "EXPERIMENT.NAME", "png"), progress=False)
    assert "test_acc:" in (t.log_path / "worklog.txt").read_text()
    write_cub(tmp_path / "cub")
    t = train(_cfg(tmp_path / "cub", "cub", "SOLVER.EPOCHS", "1", "LOG.PREFIX", str(tmp_path / "out"),
                   "EXPERIMENT.NAME", "jpeg", "DATASET.NUM_WORKERS", "2"), progress=False)  # batches from workers
    assert "test_acc:" in (t.log_path / "worklog.txt").read_text()


def test_an_undecodable_image_is_named_and_two_view_runs_are_refused(tmp_path):
    from lavid_plugin.engine.build import setup_data
    from lavid_plugin.engine.launch import train

    write_cub(tmp_path)
    bad = next((tmp_path / "CUB_200_2011" / "images").rglob("*_0000_1.jpg"))
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(LavidError, match=f"cannot decode training image {bad}"):
        train(_cfg(tmp_path, "cub", "SOLVER.EPOCHS", "1", "LOG.PREFIX", str(tmp_path / "out")), progress=False)
    with pytest.raises(LavidError, match=r"yields a \(weak, strong\) pair"):
        setup_data(_cfg(tmp_path, "cub", "DISTILLER.TYPE", "MLKD"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: nvJPEG decoding is checked on GPU machines")
def test_cuda_decoding_matches_the_cpu_decoder(tmp_path):
    from torchvision.io import read_file

    from lavid_plugin.data.device_decode import DeviceDecoder

    write_cub(tmp_path)
    files = [read_file(str(p)) for p in sorted((tmp_path / "CUB_200_2011" / "images").rglob("*.jpg"))]
    gpu, cpu = DeviceDecoder(32, "cuda").decode(files), DeviceDecoder(32, "cpu").decode(files)
    for g, c in zip(gpu, cpu):
        assert (g.cpu().int() - c.int()).abs().max() <= 3  # nvJPEG's IDCT rounds a little differently
