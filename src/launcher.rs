//! What the launcher (mpirun, MPICH's hydra, srun) tells a process through its environment
//! before MPI starts: this process's rank and the number of ranks.

/// This process's world rank and the world size as its launcher announced them (Open MPI,
/// PMI of MPICH, Slurm), read from the environment without MPI; `None` outside a launcher.
pub fn launcher_rank() -> Option<(u64, u64)> {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    [
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
        ("PMI_RANK", "PMI_SIZE"),
        ("SLURM_PROCID", "SLURM_NTASKS"),
    ]
    .iter()
    .find_map(|(r, n)| Some((var(r)?, var(n)?)))
}

/// The log label of a rank in a world of `ranks`: `driver 0` or `executor N`; `None` for a
/// single process, whose role is known only once it starts (local mode).
pub fn rank_label(rank: u64, ranks: u64) -> Option<String> {
    match (rank, ranks) {
        (_, 0 | 1) => None,
        (0, _) => Some("driver 0".to_string()),
        (rank, _) => Some(format!("executor {rank}")),
    }
}
