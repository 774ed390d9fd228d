#!/bin/bash
# Queues an N-task mlnetgpt array and a merge job that runs once every task has succeeded.
#   examples/slurm/submit.sh INPUT.csv OUTDIR [N] [generate options...]
# Prints the two job ids. MLNETGPT (default: mlnetgpt) names the tool, e.g. "dotnet /opt/mlnetgpt/MLNetGpt.Cli.dll".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
input=$(realpath "$1"); outdir=$(realpath -m "$2"); shards=${3:-4}
shift $(( $# < 3 ? $# : 3 ))
mkdir -p "$outdir"
args="${*:---seed 42}"
array=$(sbatch --parsable --array=0-$((shards - 1)) --chdir="$outdir" \
  --export=ALL,INPUT="$input",OUTDIR="$outdir",MLNETGPT_ARGS="$args" "$here/generate-array.sbatch")
array=${array%%;*}
# --kill-on-invalid-dep: if a task fails, cancel the merge instead of leaving it pending forever.
merge=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes --chdir="$outdir" \
  --export=ALL,OUTDIR="$outdir",SHARDS="$shards" "$here/merge.sbatch")
echo "array $array, merge ${merge%%;*}"
