//! Several "nodes" on one machine: one network namespace per node, joined by a bridge, and
//! an mpirun that starts one rank in each (recipe: ../shared/notes/multinode-netns.md).
//!
//! Each namespace is its own node for MPI (`MPI_Comm_split_type(SHARED)`), so ember's
//! executors see each other as remote and shuffle data goes over TCP between namespaces.
//! Names carry the test process's pid, so concurrent suites never share a bridge; what a
//! killed test left behind is removed by the next one. One rank per namespace: OpenMPI 4.1
//! over TCP crashed in `ob1` with two ranks in one namespace even for a plain C program.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Every name starts with this (namespaces `embns<pid>n<i>`, bridge `embbr<pid>`, veths
/// `embv<pid>n<i>`); the pid says whether the owner still runs.
const PREFIX: &str = "emb";
/// The nodes' subnet, private to each bridge.
const NET: &str = "10.91.0";

/// Network namespaces joined by a bridge; removed on drop.
pub struct Nodes {
    pid: u32,
    count: usize,
    agent: PathBuf,
    _dir: tempfile::TempDir,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn namespace(pid: u32, i: usize) -> String {
    format!("{PREFIX}ns{pid}n{i}")
}

/// Removes namespaces and bridges of test processes that are gone.
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let listing = String::from_utf8_lossy(&out.stdout);
    for name in listing.split_whitespace() {
        let Some(rest) = name.strip_prefix(&format!("{PREFIX}ns")) else {
            continue;
        };
        let Some(pid) = rest.split('n').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
            let _ = ip(&["link", "del", &format!("{PREFIX}br{pid}")]);
        }
    }
}

impl Nodes {
    /// Creates `count` namespaces `10.91.0.1..=count` on one bridge, or says why it cannot
    /// (not root, no `ip`, no namespaces in this container).
    pub fn create(count: usize) -> Result<Nodes, String> {
        sweep_stale();
        let pid = std::process::id();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut nodes = Nodes {
            pid,
            count: 0,
            agent: dir.path().join("nsagent"),
            _dir: dir,
        };
        let bridge = format!("{PREFIX}br{pid}");
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["link", "set", &bridge, "up"])?;
        let mut cases = String::new();
        for i in 1..=count {
            let ns = namespace(pid, i);
            let (host_end, ns_end) = (format!("{PREFIX}v{pid}n{i}"), format!("{PREFIX}p{pid}n{i}"));
            ip(&["netns", "add", &ns])?;
            nodes.count = i;
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end,
            ])?;
            ip(&["link", "set", &ns_end, "netns", &ns])?;
            ip(&["link", "set", &host_end, "master", &bridge])?;
            ip(&["link", "set", &host_end, "up"])?;
            let address = format!("{NET}.{i}/24");
            ip(&["-n", &ns, "addr", "add", &address, "dev", &ns_end])?;
            ip(&["-n", &ns, "link", "set", &ns_end, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            cases.push_str(&format!("  {NET}.{i}) ns={ns} ;;\n"));
        }
        // mpirun's "rsh agent": runs its daemon inside the namespace named by the address,
        // with a session directory of its own (the "nodes" share /tmp and a host name, and
        // daemons creating the same session directory at once fail).
        let sessions = nodes._dir.path().join("sessions");
        let script = format!(
            "#!/bin/sh\nh=$1; shift\ncase \"$h\" in\n{cases}  *) echo \"nsagent: unknown host $h\" >&2; exit 1 ;;\nesac\nexport OMPI_MCA_orte_tmpdir_base={}/$ns\nmkdir -p \"$OMPI_MCA_orte_tmpdir_base\"\nexec ip netns exec \"$ns\" /bin/sh -c \"$*\"\n",
            sessions.display()
        );
        std::fs::write(&nodes.agent, script).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&nodes.agent, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        Ok(nodes)
    }

    /// mpirun started in the first namespace, one rank per namespace over TCP.
    pub fn mpirun(&self, program: &str, args: &[&str]) -> Command {
        let net = format!("{NET}.0/24");
        let hosts: Vec<String> = (1..=self.count).map(|i| format!("{NET}.{i}:1")).collect();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &namespace(self.pid, 1), "mpirun"])
            .args(["--mca", "plm_rsh_agent", &self.agent.to_string_lossy()])
            .args(["--mca", "btl", "tcp,self"])
            .args(["--mca", "btl_tcp_if_include", &net])
            .args(["--mca", "oob_tcp_if_include", &net])
            // One-sided windows over TCP need OpenMPI's pt2pt component (sm on one node).
            .args(["--mca", "osc", "sm,pt2pt"])
            .args(["-H", &hosts.join(",")])
            .args(["-n", &self.count.to_string(), "--bind-to", "none"])
            .arg(program)
            .args(args)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        cmd
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for i in 1..=self.count {
            let _ = ip(&["netns", "del", &namespace(self.pid, i)]);
            let _ = ip(&["link", "del", &format!("{PREFIX}v{}n{i}", self.pid)]);
        }
        let _ = ip(&["link", "del", &format!("{PREFIX}br{}", self.pid)]);
    }
}
