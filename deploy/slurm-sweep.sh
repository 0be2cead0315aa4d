#!/usr/bin/env bash
# A sweep across a Slurm cluster: one array task per shard, each with its own store on shared
# storage; merge the shards when the array is done. Submit with:
#   sbatch --array=0-7 deploy/slurm-sweep.sh sweeps/policies.toml
# then, after the array:
#   shootdown sweep merge results.duckdb results/shard-*.duckdb
# A task that is killed (pre-emption, time limit) and requeued resumes its own store: runs already
# stored are skipped, none is repeated.
#SBATCH --job-name=shootdown-sweep
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=results/slurm-%A_%a.out
set -euo pipefail
sweep_file=${1:?usage: sbatch --array=0-N-1 deploy/slurm-sweep.sh SWEEP.toml}
shards=${SLURM_ARRAY_TASK_COUNT:?run as a job array: sbatch --array=0-N-1}
shard=$((SLURM_ARRAY_TASK_ID + 1))
mkdir -p results
exec shootdown sweep "$sweep_file" \
  --store "results/shard-${shard}-of-${shards}.duckdb" \
  --shard "${shard}/${shards}" \
  --jobs "${SLURM_CPUS_PER_TASK:-1}"
