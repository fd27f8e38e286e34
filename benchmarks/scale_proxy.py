"""A run larger than the demo, end to end on one machine, as a proxy for the real corpora (docs/scale.md).

    synthetic world (--identities people, VoxCeleb layout, mp4)
    -> s2f prepare on 2 simulated nodes (torchrun, loopback rendezvous, one process each)
    -> the shard root uploaded to an S3-compatible server process (moto's, on a port)
    -> s2f fit by 2 nodes x 2 ranks streaming s3://... (the debug recipe's tiny CNN, the shards' teacher)
    -> s2f export -> s2f eval on the test split with the field's protocols (SF2F galleries, 1:2 matching)

Every stage runs as the commands a user types, in processes of its own, and the script prints each
stage's wall time, the clips it handled and its rate, and writes them to ``OUT/scale_proxy.json``. On a
2-core machine the 4 training ranks share 2 cores and run one thread each: the figures say where time goes
at this scale, not how fast a cluster is.

    python benchmarks/scale_proxy.py --identities 2000 --out runs/scale_proxy
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _table import load_average, machine

ROOT = Path(__file__).resolve().parents[1]
TEACHER = "dlib_resnet"
NODES, RANKS_PER_NODE = 2, 2
# The demo's encoder (s2f_conformer_tiny with frequency_subsampling=2) sized to the teacher's 128-D space.
ENCODER = {
    "class_path": "s2f.encoders.ConformerEncoder",
    "init_args": {"d_model": 32, "num_layers": 2, "num_heads": 2, "ffn_dim": 64, "conv_kernel_size": 15,
                  "subsampling_channels": 8, "dropout": 0.0, "hidden_dim": 64, "embed_dim": 128,
                  "frequency_subsampling": 2},
}  # fmt: skip


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _s2f(*args: str) -> list[str]:
    return [sys.executable, "-m", "s2f", *args]


def _nodes(command: list[str], per_node: int, log: Path, env: dict[str, str]) -> None:
    """Runs ``command`` (a ``-m module ...`` tail) as NODES torchrun groups on one loopback rendezvous."""
    port, groups = _port(), []
    for node in range(NODES):
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(NODES), "--node-rank", str(node)]
        launcher += ["--nproc-per-node", str(per_node), "--master-addr", "127.0.0.1", "--master-port", str(port)]
        with open(log.with_name(f"{log.stem}-node{node}.log"), "w", encoding="utf-8") as out:
            groups.append(subprocess.Popen([*launcher, *command], env=env, stdout=out, stderr=subprocess.STDOUT))
    codes = [group.wait() for group in groups]
    if any(codes):
        sys.exit(f"scale_proxy: {command[1:4]} failed on 2 nodes (exit {codes}); see {log.parent}/*node*.log")


def _run(command: list[str], log: Path, env: dict[str, str]) -> None:
    with open(log, "w", encoding="utf-8") as out:
        code = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if code:
        sys.exit(f"scale_proxy: {' '.join(command[2:5])} failed (exit {code}); see {log}")


def _upload(root: Path, bucket: str, env: dict[str, str]) -> int:
    import boto3

    client = boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"],
    )  # fmt: skip
    client.create_bucket(Bucket=bucket)
    files = sorted(path for path in root.rglob("*") if path.is_file() and ".s2f_prepare" not in path.parts)
    for path in files:
        client.upload_file(str(path), bucket, f"shards/{path.relative_to(root).as_posix()}")
    return sum(path.stat().st_size for path in files)


def _moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, endpoint
        except OSError:
            time.sleep(0.2)
    server.kill()
    sys.exit(f"scale_proxy: moto's server did not start; see {log}")


def _clips(shards: Path) -> dict[str, int]:
    manifest = json.loads((shards / "s2f_shards.json").read_text())
    return {split: int(info["clips"]) for split, info in manifest["splits"].items()}


def proxy(out: Path, identities: int, clips: int, seconds: float, epochs: int) -> dict[str, Any]:
    """Runs every stage into ``out``; returns the stages' times and counts."""
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    stages: dict[str, dict[str, Any]] = {}

    def timed(name: str, work: Any) -> None:
        start = time.perf_counter()
        work()
        stages[name] = {"seconds": round(time.perf_counter() - start, 1), "load_average": load_average()}
        print(f"{name}: {stages[name]['seconds']:.0f} s", flush=True)

    world, shards = out / "world", out / "shards"
    timed(
        "synth",
        lambda: _run(
            _s2f(
                "synth",
                "--out",
                str(world),
                "--identities",
                str(identities),
                "--clips",
                str(clips),
                "--seconds",
                str(seconds),
                "--no-progress",
            ),
            logs / "synth.log",
            env,
        ),
    )
    prepare = ["-m", "s2f", "prepare", "--voxceleb", str(world / "voxceleb"), "--voxceleb-meta",
               str(world / "vox_meta.csv"), "--out", str(shards), "--teacher", TEACHER, "--max-seconds",
               str(seconds), "--min-seconds", str(min(seconds, 3.0)), "--accelerator", "cpu", "--devices", "1",
               "--num-nodes", str(NODES), "--no-progress"]  # fmt: skip
    timed("prepare (2 nodes x 1 process)", lambda: _nodes(prepare, 1, logs / "prepare.log", env))
    split_clips = _clips(shards)
    server, endpoint = _moto(logs / "moto.log")
    store = {**env, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "proxy", "AWS_SECRET_ACCESS_KEY": "proxy",
             "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    try:
        sizes: dict[str, int] = {}
        timed("upload to the object store", lambda: sizes.update(bytes=_upload(shards, "proxy", store)))
        data = ["--data.init_args.data_dir", "s3://proxy/shards", "--data.init_args.cache_dir", str(out / "cache")]
        data += ["--data.init_args.clip_seconds", str(min(seconds, 3.0))]
        model = ["--model.init_args.teacher", TEACHER, "--model.init_args.encoder", json.dumps(ENCODER)]
        trainer = ["--trainer.num_nodes", str(NODES), "--trainer.devices", str(RANKS_PER_NODE), "--trainer.strategy"]
        trainer += ["ddp", "--trainer.max_epochs", str(epochs), "--trainer.default_root_dir", str(out / "fit")]
        trainer += ["--trainer.logger", "false"]
        fit = ["-m", "s2f", "fit", "--config", str(ROOT / "recipes/debug.yaml"), *data, *model, *trainer]
        timed("fit (2 nodes x 2 ranks, streaming)", lambda: _nodes(fit, RANKS_PER_NODE, logs / "fit.log", store))
    finally:
        server.kill()
    checkpoint = next((out / "fit").rglob("last.ckpt"))
    timed("export", lambda: _run(_s2f("export", str(checkpoint), str(out / "model")), logs / "export.log", env))
    evaluate = _s2f("eval", "--model", str(out / "model"), "--data", str(shards), "--out", str(out / "eval"))
    evaluate += ["--split", "test", "--no-progress"]
    timed("eval (test split)", lambda: _run(evaluate, logs / "eval.log", env))
    result = {"machine": machine(), "identities": identities, "clips_per_identity": clips, "seconds": seconds,
              "epochs": epochs, "clips": split_clips, "shard_bytes": sizes["bytes"], "stages": stages}  # fmt: skip
    (out / "scale_proxy.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=2000)
    parser.add_argument("--clips", type=int, default=1, help="clips per identity")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/scale_proxy"))
    args = parser.parse_args(argv)
    result = proxy(args.out, args.identities, args.clips, args.seconds, args.epochs)
    total = sum(stage["seconds"] for stage in result["stages"].values())
    print(f"\n{args.identities} identities x {args.clips} clips of {args.seconds:g} s: {result['clips']} clips, "
          f"{result['shard_bytes'] / 1e6:.1f} MB of shards; {result['machine']}")  # fmt: skip
    print("| stage | wall s | share |\n|---|---|---|")
    for name, stage in result["stages"].items():
        print(f"| {name} | {stage['seconds']:.0f} | {100 * stage['seconds'] / total:.0f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
