//! Which MPI library this binary is linked against, asked without starting MPI: launching
//! a job (`ember submit`, the tests) needs the launcher of the same implementation, since a
//! rank started by another implementation's launcher comes up as a singleton.

/// The family of an MPI implementation, by its launcher and the environment it gives ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpiFamily {
    /// Open MPI: `mpirun`, ranks see `OMPI_COMM_WORLD_RANK`.
    OpenMpi,
    /// MPICH and its derivatives (Cray MPICH, Intel MPI, MVAPICH): hydra's `mpiexec`, ranks
    /// see `PMI_RANK`.
    Mpich,
}

impl MpiFamily {
    /// The family named by `name` (`openmpi`, `mpich`), as in `EMBER_MPI` or `make MPI=`.
    pub fn parse(name: &str) -> Option<MpiFamily> {
        match name.to_ascii_lowercase().as_str() {
            "openmpi" | "ompi" | "open-mpi" => Some(MpiFamily::OpenMpi),
            "mpich" => Some(MpiFamily::Mpich),
            _ => None,
        }
    }

    /// The family of a library version string (`MPI_Get_library_version`).
    pub fn of_version(version: &str) -> Option<MpiFamily> {
        let v = version.to_ascii_lowercase();
        if v.contains("open mpi") {
            Some(MpiFamily::OpenMpi)
        } else if v.contains("mpich") || v.contains("intel(r) mpi") || v.contains("mvapich") {
            Some(MpiFamily::Mpich)
        } else {
            None
        }
    }

    /// The family of the linked library, when it can be told.
    pub fn linked() -> Option<MpiFamily> {
        MpiFamily::of_version(&library_version())
    }

    pub fn name(self) -> &'static str {
        match self {
            MpiFamily::OpenMpi => "openmpi",
            MpiFamily::Mpich => "mpich",
        }
    }
}

/// `MPI_Get_library_version` of the linked library (callable before `MPI_Init`).
pub fn library_version() -> String {
    mpi::environment::library_version()
        .unwrap_or_default()
        .trim_end_matches('\0')
        .trim()
        .to_string()
}

/// Why one-sided windows must not be used with the linked library, if they must not.
///
/// MPICH 4.0 with the `ch4:ucx` device (Debian 12's MPICH 4.0.2) makes windows, but
/// `MPI_Get` between ranks of one node returns wrong bytes: always when the parts'
/// sizes are not multiples of 16, and now and then (on a loaded machine, one rank gets
/// wrong data for every read) even when they are. Reproduced with a plain C program
/// (`MPI_Win_allocate`, fill, barrier, `MPI_Win_lock_all`, `MPI_Get`s, flush), so it is
/// the library's, not ember's; the shuffle falls back to `MPI_Alltoallv`.
pub fn windows_unusable() -> Option<String> {
    windows_unusable_in(&library_version())
}

fn windows_unusable_in(version: &str) -> Option<String> {
    let field = |name: &str| {
        version
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let mpich = field("MPICH Version:")?;
    let device = field("MPICH Device:").unwrap_or("");
    (mpich.starts_with("4.0") && device.contains("ucx")).then(|| {
        format!("MPICH {mpich} ({device}) reads wrong bytes with MPI_Get between ranks of one node")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_from_version_strings() {
        assert_eq!(
            MpiFamily::of_version("Open MPI v4.1.4, package: Debian OpenMPI"),
            Some(MpiFamily::OpenMpi)
        );
        assert_eq!(
            MpiFamily::of_version("MPICH Version:      4.0.2"),
            Some(MpiFamily::Mpich)
        );
        assert_eq!(
            MpiFamily::of_version("MPI VERSION    : CRAY MPICH version 8.1.27"),
            Some(MpiFamily::Mpich)
        );
        assert_eq!(MpiFamily::of_version("something else"), None);
    }

    #[test]
    fn windows_are_refused_only_where_they_read_wrong_bytes() {
        let debian =
            "MPICH Version:\t4.0.2\nMPICH Release date:\tThu Apr  7 2022\nMPICH Device:\tch4:ucx\n";
        let why = windows_unusable_in(debian).expect("refused");
        assert!(why.contains("MPICH 4.0.2 (ch4:ucx)"), "{why}");
        assert_eq!(
            windows_unusable_in("MPICH Version:\t4.1.2\nMPICH Device:\tch4:ucx\n"),
            None
        );
        assert_eq!(
            windows_unusable_in("MPICH Version:\t4.0.2\nMPICH Device:\tch4:ofi\n"),
            None
        );
        assert_eq!(
            windows_unusable_in("Open MPI v4.1.4, package: Debian"),
            None
        );
    }

    #[test]
    fn the_linked_library_is_known() {
        // Both libraries this crate is built against here (OpenMPI and MPICH) are named.
        let v = library_version();
        assert!(MpiFamily::of_version(&v).is_some(), "{v:?}");
    }
}
