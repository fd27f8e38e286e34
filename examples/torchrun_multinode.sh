#!/usr/bin/env bash
# Multi-node training with torchrun: run this same script on every node.
#
#   NNODES=4 NODE_RANK=0 MASTER_ADDR=node0.cluster GPUS_PER_NODE=8 examples/torchrun_multinode.sh
#   NNODES=4 NODE_RANK=1 MASTER_ADDR=node0.cluster GPUS_PER_NODE=8 examples/torchrun_multinode.sh
#   ...
#
# torchrun starts one process per GPU and exports RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and
# MASTER_PORT; Lightning reads them (TorchElasticEnvironment), so --trainer.devices must equal
# --nproc_per_node and --trainer.num_nodes must equal --nnodes.
# Extra arguments go to `s2f fit`, e.g. --trainer.accumulate_grad_batches 2.
set -euo pipefail

NNODES=${NNODES:-2}
NODE_RANK=${NODE_RANK:?set NODE_RANK to the index of this node, 0 to NNODES-1}
MASTER_ADDR=${MASTER_ADDR:?set MASTER_ADDR to the host name of node 0}
MASTER_PORT=${MASTER_PORT:-29500}
GPUS_PER_NODE=${GPUS_PER_NODE:-$(nvidia-smi --list-gpus | wc -l)}
DATA=${DATA:-s3://my-bucket/avspeech-shards}
WEIGHTS=${WEIGHTS:-/weights/vgg_face_dag.pth}

# Object storage: the usual AWS settings apply (AWS_ENDPOINT_URL for MinIO, Ceph, R2 ...).
# Chunks are cached on local disk; one folder per job keeps jobs from evicting each other's chunks.
CACHE=${CACHE:-/tmp/s2f-chunks-${USER}-${SLURM_JOB_ID:-$$}}

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}  # per process; the loader workers decode FLAC on the CPU

exec torchrun \
    --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$GPUS_PER_NODE" \
    --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
    -m s2f fit \
    --config recipes/paper.yaml --config recipes/gpu.yaml --config recipes/ddp.yaml --config recipes/multinode.yaml \
    --trainer.num_nodes "$NNODES" --trainer.devices "$GPUS_PER_NODE" \
    --data.init_args.data_dir "$DATA" --data.init_args.cache_dir "$CACHE" \
    --model.init_args.teacher_weights "$WEIGHTS" \
    --ckpt_path last \
    "$@"
