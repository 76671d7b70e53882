#!/usr/bin/env bash
# Stops the one-node Slurm cluster started by scripts/slurm-up.sh.
set -u
pkill -x slurmd 2>/dev/null
pkill -x slurmctld 2>/dev/null
pkill -x munged 2>/dev/null
echo "slurm-down: stopped"
