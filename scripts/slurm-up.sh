#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine for futuretop's Slurm tests and demo:
# installs Debian's slurm-wlm and munge when missing, writes a slurm.conf for this host,
# and starts munged, slurmctld and slurmd as root. Idempotent: a running cluster is left
# as it is. `scripts/slurm-down.sh` stops it.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "slurm-up: run as root (it starts the Slurm daemons)" >&2
  exit 1
fi
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

if sinfo -h >/dev/null 2>&1 && scontrol ping 2>/dev/null | grep -q UP; then
  echo "slurm-up: already running"
  exit 0
fi

host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 1024 ))

mkdir -p /etc/munge /var/log/munge /run/munge /var/lib/munge \
         /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown -R munge:munge /etc/munge /var/log/munge /run/munge /var/lib/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || /usr/sbin/munged --force

cat > /etc/slurm/slurm.conf <<CONF
ClusterName=futuretop
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
SchedulerParameters=sched_interval=1
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 1 60); do
  if sinfo -h -o '%t' 2>/dev/null | grep -qE 'idle|mix|alloc'; then
    echo "slurm-up: one-node cluster '$host' up ($cpus CPUs, partition debug)"
    exit 0
  fi
  sleep 0.5
done
echo "slurm-up: the cluster did not come up; see /var/log/slurm/" >&2
exit 1
