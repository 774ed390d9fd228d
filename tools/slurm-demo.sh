#!/bin/bash
# Runs a sharded mlnetgpt job on a one-node Slurm cluster started here, and checks the merge.
#
#   sudo tools/slurm-demo.sh [INPUT.csv] [SHARDS]     (default: samples/prompts.csv, 4 shards)
#
# Installs slurm-wlm and munge with apt-get when they are missing, starts munged, slurmctld and slurmd
# by hand (no systemd needed) with a private configuration, key, sockets, ports and state under a
# temporary folder, so a Slurm or munge already on the machine is left alone. Submits
# examples/slurm/submit.sh's array of SHARDS generate tasks and its dependent merge job, runs the same
# job unsharded, compares the two outputs byte for byte, and stops the daemons it started, by pid.
# Exit 0 when the merged output equals the unsharded one. Takes about a minute after the install.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
input=$(realpath "${1:-$repo/samples/prompts.csv}")
shards=${2:-4}
[ "$(id -u)" -eq 0 ] || { echo "slurm-demo: run as root (it installs packages and starts slurmd)" >&2; exit 1; }

say() { echo "slurm-demo: $*"; }

if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
  say "installing slurm-wlm and munge"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge > /dev/null
fi
say "$(slurmctld -V), $(munged --version 2>&1 | head -n 1)"

say "building the tool"
dotnet build "$repo/src/MLNetGpt.Cli" -c Release -v quiet -nologo > /dev/null
tool="dotnet $repo/src/MLNetGpt.Cli/bin/Release/net10.0/MLNetGpt.Cli.dll"

work=$(mktemp -d -t mlnetgpt-slurm-demo.XXXXXX)
chmod 755 "$work"
pids=()
stop() {
  # Only what this script started, newest first, by the pids it recorded.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2> /dev/null && say "stopped pid ${pids[i]}" || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  done
}
trap stop EXIT

# munge: its own key, socket and files, run as the munge user as it expects. The socket's folder
# must be open to every user, the key's to munge alone.
mkdir -p "$work/munge" "$work/munge-private"
dd if=/dev/urandom of="$work/munge-private/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$work/munge" "$work/munge-private"
chmod 755 "$work/munge"
chmod 700 "$work/munge-private"
chmod 400 "$work/munge-private/munge.key"
setpriv --reuid=munge --regid=munge --init-groups munged --foreground --key-file="$work/munge-private/munge.key" \
  --socket="$work/munge/munge.socket" --pid-file="$work/munge/munged.pid" --log-file="$work/munge-private/munged.log" \
  --seed-file="$work/munge-private/munged.seed" > "$work/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$work/munge/munge.socket" ] && break; sleep 0.1; done
[ -S "$work/munge/munge.socket" ] || { say "munged did not start"; exit 1; }
say "munged running (pid ${pids[-1]})"

host=$(hostname -s)
mkdir -p "$work/state" "$work/spool" "$work/out"
node=$(slurmd -C 2> /dev/null | head -n 1)
cat > "$work/slurm.conf" << EOF
ClusterName=mlnetgpt-demo
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=demo Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$work/slurm.conf"
slurmctld -D -i -f "$SLURM_CONF" > "$work/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" > "$work/slurmd.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do sinfo -h -o %t 2> /dev/null | grep -qE '^idle' && break; sleep 0.2; done
say "slurmctld (pid ${pids[1]}) and slurmd (pid ${pids[2]}) up: $(sinfo -h -o '%P %D node(s) %t %c CPUs')"

say "unsharded run"
$tool generate "$input" -o "$work/unsharded.csv" --seed 42 --quiet || [ $? -eq 2 ]

say "submitting $shards shards and the merge"
submitted=$(cd "$work/out" && MLNETGPT="$tool" "$repo/examples/slurm/submit.sh" "$input" "$work/out" "$shards" --seed 42)
say "$submitted"
merge=${submitted##* }
for _ in $(seq 900); do
  state=$(scontrol show job "$merge" 2> /dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2 || true)
  case "$state" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) break ;; esac
  sleep 1
done
say "merge job $merge: ${state:-unknown}"
for log in "$work"/out/mlnetgpt-*.out; do echo "--- $(basename "$log")"; cat "$log"; done
ls -l "$work/out"

if cmp "$work/unsharded.csv" "$work/out/merged.csv"; then
  say "OK: the merged output of $shards shards equals the unsharded output byte for byte ($(wc -c < "$work/out/merged.csv") bytes, sha256 $(sha256sum < "$work/out/merged.csv" | cut -c1-16)...)"
  status=0
else
  say "FAILED: the merged output differs from the unsharded one (see $work)"
  status=1
fi
exit "$status"
