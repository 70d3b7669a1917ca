"""Data-parallel training on the CPU: 2 gloo processes on the loopback interface.

`torchrun` (as `python -m torch.distributed.run`) launches the real CLI; the collective helpers
of passersby.train.dist are checked in a small 2-process script.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from passersby.checkpoint import load_train_state

TIMEOUT = 420  # seconds per launch: generous, CI machines are slow and shared


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", MASTER_ADDR="127.0.0.1",
               PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    return env


def _torchrun(*cli_args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "passersby.cli", "train", *cli_args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)


def _tiny_cli(data: Path, out: Path, steps: int, *extra: str) -> list[str]:
    return [str(data), "--out", str(out), "--steps", str(steps), "--resolution", "64", "--ngf", "8",
            "--ndf", "8", "--z-dim", "16", "--batch-size", "2", "--no-metrics", "--device", "cpu",
            "--sample-every", "2", "--checkpoint-every", "2", *extra]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, prepared_data):
    out = tmp_path_factory.mktemp("ddp") / "run"
    res = _torchrun(*_tiny_cli(prepared_data, out, 4), cwd=out.parent)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out


@pytest.mark.slow
def test_torchrun_two_processes(ddp_run):
    ck = sorted(p.name for p in (ddp_run / "checkpoints").iterdir())
    assert ck == ["step-00000002.safetensors", "step-00000004.safetensors"]
    tensors, meta = load_train_state(ddp_run / "checkpoints" / "step-00000004.safetensors")
    assert meta["world_size"] == 2 and meta["step"] == 4
    assert (ddp_run / "model.safetensors").is_file() and (ddp_run / "samples" / "latest.png").is_file()
    # each process draws its own batches, and the checkpoint keeps every process's streams
    for name in ("data", "z", "aug"):
        assert f"rng_rank1.{name}" in tensors
        assert not torch.equal(tensors[f"rng.{name}"], tensors[f"rng_rank1.{name}"])


@pytest.mark.slow
def test_torchrun_resume_is_exact(ddp_run, prepared_data, tmp_path):
    out = tmp_path / "run"
    for steps, extra in ((2, ()), (4, ("--resume",))):
        res = _torchrun(*_tiny_cli(prepared_data, out, steps, *extra), cwd=tmp_path)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ta, ma = load_train_state(ddp_run / "checkpoints" / "step-00000004.safetensors")
    tb, mb = load_train_state(out / "checkpoints" / "step-00000004.safetensors")
    assert set(ta) == set(tb) and ma["step"] == mb["step"] == 4
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differ, f"{len(differ)} of {len(ta)} tensors differ, e.g. {differ[:8]}"


COLLECTIVES = textwrap.dedent(
    """
    import sys
    import torch
    import torch.distributed as td
    import torch.multiprocessing as mp
    from passersby.train import dist

    def worker(rank, init, out):
        td.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
        info = dist.DistInfo(rank=rank, world=2, local_rank=rank)
        torch.manual_seed(rank)  # different weights per rank: broadcast_module must fix that
        m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2), torch.nn.Linear(2, 1))
        m[1].running_mean.fill_(rank + 5)
        dist.broadcast_module(m, info)
        m[0].weight.grad = torch.full((2, 3), float(rank + 1))  # 1 and 2 -> 1.5
        m[0].bias.grad = torch.tensor([10.0 * rank, -4.0 * rank])  # -> [5, -2]
        m[1].weight.grad = torch.arange(2.0) * (rank + 1) * 3  # -> [0, 4.5]
        # m[1].bias and m[2] have no gradient on either rank: they must be left as they are
        dist.average_gradients(m, info)
        stop = dist.any_process(rank == 1, info, torch.device("cpu"))
        gathered = dist.all_gather_object({"rank": rank}, info)
        torch.save({"w": m[0].weight.grad, "b": m[0].bias.grad, "bn": m[1].weight.grad,
                    "none": [m[1].bias.grad, m[2].weight.grad], "stop": stop, "gathered": gathered,
                    "state": {k: v.clone() for k, v in m.state_dict().items()}}, f"{out}/rank{rank}.pt")
        td.barrier()
        td.destroy_process_group()

    if __name__ == "__main__":
        out = sys.argv[1]
        mp.spawn(worker, args=(f"file://{out}/store", out), nprocs=2, join=True)
    """
)


@pytest.mark.slow
def test_collectives_average_and_agree(tmp_path):
    script = tmp_path / "collectives.py"
    script.write_text(COLLECTIVES)
    res = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for r in (r0, r1):
        torch.testing.assert_close(r["w"], torch.full((2, 3), 1.5))
        torch.testing.assert_close(r["b"], torch.tensor([5.0, -2.0]))
        torch.testing.assert_close(r["bn"], torch.tensor([0.0, 4.5]))
        assert r["none"] == [None, None]
        assert r["stop"] is True  # one process's True is everyone's
        assert r["gathered"] == [{"rank": 0}, {"rank": 1}]
    for k in r0["state"]:  # rank 0's weights and buffers everywhere
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    assert torch.equal(r0["state"]["1.running_mean"], torch.full((2,), 5.0))


def test_single_process_helpers_are_no_ops():
    from passersby.train import dist

    info = dist.DistInfo()
    m = torch.nn.Linear(2, 2)
    m.weight.grad = torch.ones(2, 2)
    dist.average_gradients(m, info)
    dist.broadcast_module(m, info)
    dist.barrier(info)
    assert torch.equal(m.weight.grad, torch.ones(2, 2))
    assert dist.any_process(True, info, torch.device("cpu")) is True
    assert dist.all_gather_object(7, info) == [7]
    assert info.main and info.world == 1
