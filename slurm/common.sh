# Sourced by ember's sbatch scripts: derives the engine settings from the Slurm allocation
# and launches a job binary, rank 0 the driver and every other task an executor.
#
# Settings (environment variables, all optional):
#   EMBER_HOME      the ember checkout (default: the directory sbatch was called from)
#   EMBER_BIN       where the job binaries are (default: $EMBER_HOME/target/release)
#   EMBER_LAUNCHER  srun (default when Slurm's PMIx plugin exists) or mpirun
#   EMBER_LOCAL_DIR node-local scratch for shuffle and cache files (default /dev/shm)

EMBER_HOME=${EMBER_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
EMBER_BIN=${EMBER_BIN:-$EMBER_HOME/target/release}

# Threads per executor = the CPUs Slurm gives each task.
export EMBER_EXECUTOR_CORES=${EMBER_EXECUTOR_CORES:-${SLURM_CPUS_PER_TASK:-1}}

# Memory per executor from --mem-per-cpu or --mem (per node, shared by its tasks); 3/4 of
# it for the block store, the rest for tasks and MPI.
if [ -z "${EMBER_EXECUTOR_MEMORY:-}" ]; then
  if [ -n "${SLURM_MEM_PER_CPU:-}" ]; then
    EMBER_EXECUTOR_MEMORY=$(( SLURM_MEM_PER_CPU * EMBER_EXECUTOR_CORES * 3 / 4 ))m
  elif [ -n "${SLURM_MEM_PER_NODE:-}" ]; then
    tasks_here=${SLURM_NTASKS_PER_NODE:-${SLURM_NTASKS:-1}}
    EMBER_EXECUTOR_MEMORY=$(( SLURM_MEM_PER_NODE / tasks_here * 3 / 4 ))m
  fi
  [ -n "${EMBER_EXECUTOR_MEMORY:-}" ] && export EMBER_EXECUTOR_MEMORY
fi

# OpenMPI refuses root unless told; harmless for other users.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# ember_launch JOB ARGS...: one rank per Slurm task. JOB is a job of $EMBER_BIN by name
# or the absolute path of any job binary (what `ember submit --master slurm` writes).
#  - srun --mpi=pmix: Slurm starts the ranks itself (OpenMPI 4 with Slurm's pmix_v4).
#  - mpirun (fallback, or EMBER_LAUNCHER=mpirun): OpenMPI reads the allocation from the
#    environment; binding is left to ember (--bind-to none).
#  srun --mpi=pmi2 does not work with OpenMPI 4.1 ("Local abort before MPI_INIT").
ember_launch() {
  local job=$1 exe
  shift
  case "$job" in
    /*) exe=$job; job=${job##*/} ;;
    *) exe="$EMBER_BIN/$job" ;;
  esac
  [ -x "$exe" ] || { echo "ember: no job binary $exe on $(hostname) (build with cargo build --release, or set EMBER_BIN; every node must see it)" >&2; return 2; }
  local launcher=${EMBER_LAUNCHER:-}
  if [ -z "$launcher" ]; then
    if srun --mpi=list 2>&1 | grep -q pmix; then launcher=srun; else launcher=mpirun; fi
  fi
  echo "ember: $job on ${SLURM_NTASKS:-?} tasks (1 driver + executors) via $launcher; executor cores $EMBER_EXECUTOR_CORES, memory ${EMBER_EXECUTOR_MEMORY:-default}" >&2
  case "$launcher" in
    srun) srun --mpi=pmix --kill-on-bad-exit=1 "$exe" "$@" ;;
    mpirun) mpirun --oversubscribe --bind-to none "$exe" "$@" ;;
    *) echo "ember: unknown EMBER_LAUNCHER $launcher" >&2; return 2 ;;
  esac
}
