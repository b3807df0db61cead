//! The exchange: every reduce partition's bytes reach its owner, over MPI or, between
//! executors on one node, by reading the sender's map file in place.
//!
//! 1. Metadata (one small all-to-all): each executor tells each destination which runs it
//!    holds for it: map file path, then (partition, offset, length) per run. Receivers
//!    check every run (partition in range and owned by them).
//! 2. Co-located sources (`--shuffle-mode auto`): the receiver maps the sender's map file
//!    and its blocks point into it. Nothing is copied; map files stay until the driver
//!    removes the shuffle (then later map outputs overwrite them) or the executor stops.
//! 3. `--shuffle-mode rma`: each executor copies its map files into an MPI window and
//!    receivers `MPI_Get` their runs into one mapped reduce file (one-sided, the RDMA
//!    path). Where windows cannot be made, every executor falls back to step 4 together
//!    and the reason is logged.
//! 4. Remote sources: rounds of `MPI_Alltoall` (counts) and `MPI_Alltoallv` (data), sent
//!    straight from the mapped map file and received straight into one mapped reduce
//!    file, at most `round_bytes / executors` per destination per round, so memory stays
//!    at the executor's own data plus one round. Small map files share a round (packed
//!    by destination), so the number of rounds follows the bytes, not the number of map
//!    files. Every executor runs the agreed maximum number of rounds. A source that sends more or less than it announced is
//!    `CorruptShuffle` naming the shuffle and the source executor.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::config::ShuffleMode;
use crate::error::{Error, Result};
use crate::faults::ShuffleFault;
use crate::io::scratch::{create_private, map_read};
use crate::shuffle::ShuffleId;
use crate::shuffle::block::{Block, BlockBytes};
use crate::shuffle::files::MapFile;
use crate::shuffle::store::{ReduceSide, ShuffleStore};
use crate::transport::{Group, prefix_sums};

/// One map file's runs for one destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRuns {
    pub path: PathBuf,
    /// Where the file starts in the sender's RMA window.
    pub window_offset: u64,
    /// (reduce partition, offset in the file, length).
    pub runs: Vec<(u32, u64, u64)>,
}

/// What an exchange works with: the executors' group, this executor's shuffle store, where
/// every peer runs, and how to move data.
pub struct Exchange<'a> {
    /// The executors (not the driver); peer `p` is executor `first_id + p`.
    pub peers: &'a dyn Group,
    /// The world rank of peer 0: executor ids are world ranks.
    pub first_id: usize,
    pub store: &'a ShuffleStore,
    /// The node of every peer (index = rank in `peers`).
    pub peer_nodes: &'a [usize],
    pub mode: ShuffleMode,
    /// Bytes this executor sends per `MPI_Alltoallv` round.
    pub round_bytes: usize,
    /// A fault to inject (tests; see [`crate::faults::shuffle_fault`]).
    pub fault: Option<ShuffleFault>,
}

/// How an executor that did not fail reports an exchange another one failed; the driver
/// reports the failing executor's own message instead.
pub const ABANDONED: &str = "exchange abandoned";

/// Failure agreement: every executor learns, in one small collective, whether any of them
/// failed since the last collective, so none enters the next one alone (it would wait
/// there forever). Returns `local` where all succeeded, the local error where this one
/// failed, and an error naming the abandoned exchange on the others.
fn agree<T>(peers: &dyn Group, shuffle: ShuffleId, local: Result<T>) -> Result<T> {
    let failed = peers.all_max(local.is_err() as u64)?;
    match local {
        Ok(_) if failed > 0 => Err(Error::Other(format!(
            "shuffle {shuffle}: {ABANDONED}: another executor failed"
        ))),
        other => other,
    }
}

/// What the metadata step yields: blocks read in place, and per remote source its runs
/// as (partition, offset in the source's window, length).
type Listed = (
    HashMap<usize, Vec<Block>>,
    Vec<Vec<(usize, usize, usize)>>,
    u64,
);

/// What one executor's part of an exchange moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exchanged {
    /// Bytes that reached this executor, by MPI or read in place.
    pub bytes: u64,
    /// Of those, the bytes that came from executors on other nodes.
    pub cross_node: u64,
    /// `MPI_Alltoallv` rounds (0 for a one-sided exchange).
    pub rounds: u32,
    /// The remote data came by one-sided `MPI_Get`.
    pub one_sided: bool,
}

/// Runs this executor's part of exchanging `shuffle`: what reached it and how.
pub fn exchange(ex: &Exchange<'_>, shuffle: ShuffleId) -> Result<Exchanged> {
    let peers = ex.peers;
    let (n, my_peer) = (peers.size(), peers.rank());
    let me = ex.first_id + my_peer;
    let mut files = ex.store.take_map_files(shuffle);
    let prepared = ex.store.owners(shuffle).and_then(|owners| {
        if ex.fault == Some(ShuffleFault::FailPrepare) {
            return Err(injected(shuffle, me, "before the metadata step"));
        }
        if ex.fault == Some(ShuffleFault::Corrupt) {
            corrupt_map_files(ex.store, &mut files)?;
        }
        Ok(owners)
    });
    let owners = agree(peers, shuffle, prepared)?;
    let in_place = |peer: usize| {
        peer == my_peer
            || (ex.mode == ShuffleMode::Auto && ex.peer_nodes[peer] == ex.peer_nodes[my_peer])
    };

    // 1. Metadata.
    let meta_send = listings(&files, n);
    let meta_counts: Vec<usize> = meta_send.iter().map(Vec::len).collect();
    let meta = peers.all_to_all_v(&meta_send.concat(), &meta_counts)?;
    let listed = list_runs(ex, shuffle, &owners, &meta, &in_place, &files).and_then(|listed| {
        match ex.fault {
            Some(ShuffleFault::Fail) => Err(injected(shuffle, me, "after the metadata step")),
            _ => Ok(listed),
        }
    });
    let (mut blocks, remote, in_place_bytes) = agree(peers, shuffle, listed)?;
    let cross_node: u64 = remote
        .iter()
        .enumerate()
        .filter(|(peer, _)| ex.peer_nodes[*peer] != ex.peer_nodes[my_peer])
        .flat_map(|(_, runs)| runs.iter().map(|&(_, _, len)| len as u64))
        .sum();

    // 2. Remote data by MPI, into one reduce file: one-sided if asked and possible.
    if ex.mode == ShuffleMode::Rma
        && let Some(received) = receive_rma(ex, shuffle, &files, &remote, &mut blocks)?
    {
        ex.store.retain_map_files(shuffle, files);
        ex.store
            .put_reduce_side(shuffle, ReduceSide { owners, blocks });
        return Ok(Exchanged {
            bytes: received + in_place_bytes,
            cross_node,
            rounds: 0,
            one_sided: true,
        });
    }
    let (received, rounds) = receive_remote(ex, shuffle, &files, &remote, &in_place, &mut blocks)?;
    if ex.mode == ShuffleMode::Alltoallv {
        // Nobody reads these files in place: free their memory now.
        files.iter().for_each(|f| ex.store.remove_map_file(f));
    } else {
        ex.store.retain_map_files(shuffle, files);
    }
    ex.store
        .put_reduce_side(shuffle, ReduceSide { owners, blocks });
    Ok(Exchanged {
        bytes: received + in_place_bytes,
        cross_node,
        rounds,
        one_sided: false,
    })
}

/// Per peer, the encoded listing of what `files` hold for it: each file with data for the
/// peer, where the file starts in this executor's window, and its runs for the peer as
/// (partition, offset in the file, length).
fn listings(files: &[MapFile], peers: usize) -> Vec<Vec<u8>> {
    let sizes: Vec<usize> = files.iter().map(|f| f.bytes() as usize).collect();
    let window_offsets = prefix_sums(&sizes);
    (0..peers)
        .map(|peer| {
            let listing: Vec<FileRuns> = files
                .iter()
                .enumerate()
                .filter(|(_, f)| !f.parts[peer].is_empty())
                .map(|(i, f)| {
                    let mut at = f.runs[peer].0;
                    let runs = f.parts[peer]
                        .iter()
                        .map(|&(r, len)| {
                            at += len;
                            (r, at - len, len)
                        })
                        .collect();
                    FileRuns {
                        path: f.data.clone(),
                        window_offset: window_offsets[i] as u64,
                        runs,
                    }
                })
                .collect();
            codec::encode(&listing)
        })
        .collect()
}

/// The injected fault `corrupt`: every byte of this executor's map output made 0xff, in
/// its files and in the buckets it kept in memory.
fn corrupt_map_files(store: &ShuffleStore, files: &mut [MapFile]) -> Result<()> {
    for f in files.iter_mut() {
        if f.bytes() > 0 {
            std::fs::write(&f.data, vec![0xff; f.bytes() as usize])
                .map_err(|e| Error::io(&f.data, e))?;
        }
        for (_, bytes) in &mut f.own {
            let garbage = vec![0xff; bytes.len()];
            *bytes = Arc::new(BlockBytes::Memory(garbage, store.memory().reservation()));
        }
    }
    Ok(())
}

/// Checks every source's announced runs and maps co-located sources' files in place;
/// this executor's own `files` add the buckets they kept in memory, in their place among
/// the sources.
fn list_runs(
    ex: &Exchange<'_>,
    shuffle: ShuffleId,
    owners: &[usize],
    meta: &crate::transport::Received,
    in_place: &dyn Fn(usize) -> bool,
    files: &[MapFile],
) -> Result<Listed> {
    let (n, first_id) = (ex.peers.size(), ex.first_id);
    let me = first_id + ex.peers.rank();
    let mut blocks: HashMap<usize, Vec<Block>> = HashMap::new();
    // Per source: (partition, offset in the source's window, length).
    let mut remote: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); n];
    let mut in_place_bytes = 0u64;
    for (peer, remote_runs) in remote.iter_mut().enumerate() {
        let source = first_id + peer;
        let listing: Vec<FileRuns> = codec::decode(meta.from_rank(peer))
            .map_err(|e| corrupt(shuffle, source, format!("metadata: {e}")))?;
        for file in listing {
            check_runs(&file.runs, shuffle, owners, me, source)?;
            if in_place(peer) {
                // Mapped lazily: only this executor's runs of the file get touched.
                let Some(map) = crate::io::input::map_file(&file.path)? else {
                    continue;
                };
                let map = Arc::new(BlockBytes::Mapped(map));
                for &(r, offset, len) in &file.runs {
                    let range = offset as usize..(offset + len) as usize;
                    if range.end > map.len() {
                        return Err(corrupt(
                            shuffle,
                            source,
                            format!("a run beyond the end of {}", file.path.display()),
                        ));
                    }
                    in_place_bytes += len;
                    blocks.entry(r as usize).or_default().push(Block {
                        source,
                        data: Arc::clone(&map),
                        range,
                    });
                }
            } else {
                let base = file.window_offset;
                remote_runs.extend(
                    file.runs
                        .iter()
                        .map(|&(r, off, len)| (r as usize, (base + off) as usize, len as usize)),
                );
            }
        }
        if source == me {
            for file in files {
                for (r, bytes) in &file.own {
                    in_place_bytes += bytes.len() as u64;
                    blocks.entry(*r as usize).or_default().push(Block {
                        source,
                        data: Arc::clone(bytes),
                        range: 0..bytes.len(),
                    });
                }
            }
        }
    }

    Ok((blocks, remote, in_place_bytes))
}

/// A mapped file of `total` bytes in the scratch directory for what this executor
/// receives; `None` when nothing comes.
fn reduce_file(
    store: &ShuffleStore,
    shuffle: ShuffleId,
    total: usize,
) -> Result<Option<memmap2::MmapMut>> {
    if total == 0 {
        return Ok(None);
    }
    let path = store.place_reduce_file(shuffle, total as u64);
    // A removed shuffle's file, if one is kept: its pages are written again, not anew.
    let file = match store.take_pooled(&path, total as u64) {
        Some(file) => {
            file.set_len(total as u64)
                .map_err(|e| Error::io(&path, e))?;
            file
        }
        None => create_private(&path)?,
    };
    // Blocks reserved now: a full local dir is this error, not a SIGBUS when MPI writes
    // into a hole of a sparse mapping.
    crate::io::scratch::allocate(&file, total as u64).map_err(|e| Error::io(&path, e))?;
    // SAFETY: a private file of ours, fresh or of a shuffle no one reads any more; no one
    // else maps or truncates it. Populated up front: one bulk fault instead of one per
    // page while MPI writes.
    let map = unsafe { memmap2::MmapOptions::new().populate().map_mut(&file) };
    Ok(Some(map.map_err(|e| Error::io(&path, e))?))
}

/// Turns the filled reduce file into blocks: `remote[peer]` runs, in order, from `base[peer]`.
fn add_received_blocks(
    map: Option<memmap2::MmapMut>,
    remote: &[Vec<(usize, usize, usize)>],
    base: &[usize],
    first_id: usize,
    blocks: &mut HashMap<usize, Vec<Block>>,
) -> Result<()> {
    let Some(map) = map else { return Ok(()) };
    let data = Arc::new(BlockBytes::Mapped(
        map.make_read_only()
            .map_err(|e| Error::Other(format!("reduce file: {e}")))?,
    ));
    for (peer, runs) in remote.iter().enumerate() {
        let mut at = base[peer];
        for &(r, _, len) in runs {
            blocks.entry(r).or_default().push(Block {
                source: first_id + peer,
                data: Arc::clone(&data),
                range: at..at + len,
            });
            at += len;
        }
    }
    Ok(())
}

/// The one-sided exchange: map files copied into a window, runs fetched with `MPI_Get`.
/// Returns `None`, on every executor alike, when some executor could not make its window.
fn receive_rma(
    ex: &Exchange<'_>,
    shuffle: ShuffleId,
    files: &[MapFile],
    remote: &[Vec<(usize, usize, usize)>],
    blocks: &mut HashMap<usize, Vec<Block>>,
) -> Result<Option<u64>> {
    let (peers, first_id) = (ex.peers, ex.first_id);
    let local_bytes: usize = files.iter().map(|f| f.bytes() as usize).sum();
    // The window is a copy of the map files in memory: it holds that much of the budget
    // until it is freed, or is not made (and every executor falls back together).
    let mut reserved = ex.store.memory().reservation();
    let window = if reserved.grow_to(local_bytes as u64) {
        peers.window(local_bytes)
    } else {
        Err(format!(
            "its {} of map output does not fit the memory budget",
            crate::config::ByteSize(local_bytes as u64)
        ))
    };
    let failed = peers.all_max(window.is_err() as u64)? > 0;
    let mut window = match window {
        Ok(w) if !failed => w,
        Ok(_) => {
            tracing::warn!(
                "shuffle {shuffle}: another executor could not make an RMA window: using alltoallv"
            );
            return Ok(None);
        }
        Err(reason) => {
            tracing::warn!("shuffle {shuffle}: no RMA window ({reason}): using alltoallv");
            return Ok(None);
        }
    };
    let totals: Vec<usize> = remote
        .iter()
        .map(|runs| runs.iter().map(|r| r.2).sum())
        .collect();
    let base = prefix_sums(&totals);
    let filled = (|| {
        let local = window.local_mut();
        let mut at = 0;
        for f in files {
            if let Some(map) = map_read(&f.data)? {
                local[at..at + map.len()].copy_from_slice(&map);
                at += map.len();
            }
        }
        if ex.fault == Some(ShuffleFault::FailWindow) {
            let me = first_id + peers.rank();
            return Err(injected(shuffle, me, "filling its window"));
        }
        reduce_file(ex.store, shuffle, totals.iter().sum())
    })();
    // Every part is filled (or everyone stops) before anyone reads.
    let filled = agree(peers, shuffle, filled);
    let mut reduce_map = match filled {
        Ok(map) => map,
        Err(e) => {
            // Freeing the window is a collective: everyone does it here together.
            drop(window);
            return Err(e);
        }
    };
    let fetched = {
        let mut rest: &mut [u8] = reduce_map.as_deref_mut().unwrap_or(&mut []);
        let mut requests = Vec::new();
        for (peer, runs) in remote.iter().enumerate() {
            for &(_, offset, len) in runs {
                let (dest, tail) = std::mem::take(&mut rest).split_at_mut(len);
                rest = tail;
                requests.push((peer, offset, dest));
            }
        }
        window.get_many(&mut requests)
    };
    // Nobody frees its window (a collective) while others may still read it.
    peers.barrier()?;
    drop(window);
    drop(reserved);
    fetched.map_err(|e| Error::Other(format!("shuffle {shuffle}: one-sided read failed: {e}")))?;
    add_received_blocks(reduce_map, remote, &base, first_id, blocks)?;
    Ok(Some(totals.iter().sum::<usize>() as u64))
}

/// Moves the runs for remote destinations by MPI rounds; `remote[peer]` lists what each
/// remote source announced. Adds the received blocks; returns (bytes received, rounds).
fn receive_remote(
    ex: &Exchange<'_>,
    shuffle: ShuffleId,
    files: &[MapFile],
    remote: &[Vec<(usize, usize, usize)>],
    in_place: &dyn Fn(usize) -> bool,
    blocks: &mut HashMap<usize, Vec<Block>>,
) -> Result<(u64, u32)> {
    let (peers, first_id) = (ex.peers, ex.first_id);
    let n = peers.size();
    let totals: Vec<usize> = remote
        .iter()
        .map(|runs| runs.iter().map(|r| r.2).sum())
        .collect();
    let base = prefix_sums(&totals);
    let total: usize = totals.iter().sum();

    // My sends: per map file with data for remote peers, rounds of at most `quota` bytes
    // per destination.
    let quota = (ex.round_bytes / n).max(1) as u64;
    let planned = plan_sends(ex, shuffle, files, in_place, total, quota);
    let (mut reduce_map, maps, pieces) = agree(peers, shuffle, planned)?;
    let plan = group_pieces(pieces, quota as usize);
    let rounds = peers.all_max(plan.len() as u64)? as usize;
    let recv: &mut [u8] = reduce_map.as_deref_mut().unwrap_or(&mut []);
    let received = Received {
        base: &base,
        totals: &totals,
    };
    let cursor = send_rounds(ex, shuffle, &plan, &maps, rounds, recv, &received)?;
    received.check_arrived(shuffle, first_id, &cursor)?;
    add_received_blocks(reduce_map, remote, &base, first_id, blocks)?;
    Ok((total as u64, rounds as u32))
}

/// What [`plan_sends`] readies: the reduce file, the map files mapped, their pieces.
type Sends = (
    Option<memmap2::MmapMut>,
    Vec<Option<memmap2::Mmap>>,
    Vec<Piece>,
);

/// The map files mapped for reading, and their data's pieces, that this executor sends
/// to remote peers (`remote_len` bytes of each run: none to a peer that reads in place),
/// and the reduce file of `total` bytes that what it receives goes into.
fn plan_sends(
    ex: &Exchange<'_>,
    shuffle: ShuffleId,
    files: &[MapFile],
    in_place: &dyn Fn(usize) -> bool,
    total: usize,
    quota: u64,
) -> Result<Sends> {
    let n = ex.peers.size();
    let remote_len = |f: &MapFile, peer: usize| if in_place(peer) { 0 } else { f.runs[peer].1 };
    let reduce_map = reduce_file(ex.store, shuffle, total)?;
    let mut maps = Vec::with_capacity(files.len());
    let mut pieces: Vec<Piece> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let rounds = (0..n)
            .map(|p| remote_len(f, p).div_ceil(quota))
            .max()
            .unwrap_or(0);
        maps.push(if rounds > 0 { map_read(&f.data)? } else { None });
        pieces.extend((0..rounds).map(|k| {
            Piece {
                file: i,
                counts: (0..n)
                    .map(|p| remote_len(f, p).saturating_sub(k * quota).min(quota) as usize)
                    .collect(),
                displs: (0..n)
                    .map(|p| (f.runs[p].0 + (k * quota).min(f.runs[p].1)) as usize)
                    .collect(),
            }
        }));
    }
    Ok((reduce_map, maps, pieces))
}

/// Where each peer's bytes start in the reduce file, and how many it announced.
struct Received<'a> {
    base: &'a [usize],
    totals: &'a [usize],
}

impl Received<'_> {
    /// An error unless every peer's announced bytes all arrived (`cursor`: where each
    /// peer's next byte would go).
    fn check_arrived(&self, shuffle: ShuffleId, first_id: usize, cursor: &[usize]) -> Result<()> {
        for (peer, &total) in self.totals.iter().enumerate() {
            let got = cursor[peer] - self.base[peer];
            if got != total {
                let detail = format!("truncated: {got} of the {total} bytes it announced arrived");
                return Err(corrupt(shuffle, first_id + peer, detail));
            }
        }
        Ok(())
    }
}

/// The data rounds of an exchange (`rounds`, agreed by every peer; this executor's
/// `plan` may hold fewer): each an all-to-all of this round's pieces into `recv`. Checks
/// before each round that no peer sends more than it announced. Returns where each
/// peer's next byte would go.
fn send_rounds(
    ex: &Exchange<'_>,
    shuffle: ShuffleId,
    plan: &[Vec<Piece>],
    maps: &[Option<memmap2::Mmap>],
    rounds: usize,
    recv: &mut [u8],
    received: &Received,
) -> Result<Vec<usize>> {
    let (peers, first_id) = (ex.peers, ex.first_id);
    let n = peers.size();
    let mut cursor = received.base.to_vec();
    let mut send_short = ex.fault == Some(ShuffleFault::Truncate);
    let mut packed = Vec::new();
    for round in 0..rounds {
        let (send, mut counts, displs): (&[u8], Vec<usize>, Vec<usize>) = match plan.get(round) {
            // One map file's piece: sent straight from the mapped file.
            Some(one) if one.len() == 1 => {
                let p = &one[0];
                let map = maps[p.file].as_deref().unwrap_or(&[]);
                (map, p.counts.clone(), p.displs.clone())
            }
            // Several small files' pieces share the round: packed by destination.
            Some(several) => {
                let (counts, displs) = pack_pieces(several, maps, n, &mut packed);
                (&packed[..], counts, displs)
            }
            None => (&[], vec![0; n], vec![0; n]),
        };
        if send_short && let Some(c) = counts.iter_mut().find(|c| **c > 0) {
            *c -= 1;
            send_short = false;
        }
        let recv_counts = peers.all_to_all_counts(&counts)?;
        let (base, totals) = (received.base, received.totals);
        let fits = (0..n)
            .find(|&peer| cursor[peer] + recv_counts[peer] > base[peer] + totals[peer])
            .map_or(Ok(()), |peer| {
                let detail = format!("sent more than the {} bytes it announced", totals[peer]);
                Err(corrupt(shuffle, first_id + peer, detail))
            })
            .and_then(|()| match ex.fault {
                Some(ShuffleFault::FailRound) if round == 1.min(rounds - 1) => {
                    let me = first_id + peers.rank();
                    Err(injected(shuffle, me, &format!("in data round {round}")))
                }
                _ => Ok(()),
            });
        agree(peers, shuffle, fits)?;
        peers.all_to_all_v_into(send, &counts, &displs, recv, &recv_counts, &cursor)?;
        for peer in 0..n {
            cursor[peer] += recv_counts[peer];
        }
    }
    Ok(cursor)
}

/// One map file's share of a data round: per destination, bytes and where they start.
struct Piece {
    file: usize,
    counts: Vec<usize>,
    displs: Vec<usize>,
}

/// Rounds of consecutive pieces whose bytes for every destination fit `quota` together, so
/// the number of rounds follows the bytes, not the number of map files (each round
/// synchronises every executor).
fn group_pieces(pieces: Vec<Piece>, quota: usize) -> Vec<Vec<Piece>> {
    let mut rounds: Vec<Vec<Piece>> = Vec::new();
    let mut load: Vec<usize> = Vec::new();
    for piece in pieces {
        let fits =
            !rounds.is_empty() && load.iter().zip(&piece.counts).all(|(l, c)| l + c <= quota);
        if fits {
            load.iter_mut()
                .zip(&piece.counts)
                .for_each(|(l, c)| *l += c);
            if let Some(round) = rounds.last_mut() {
                round.push(piece);
            }
        } else {
            load = piece.counts.clone();
            rounds.push(vec![piece]);
        }
    }
    rounds
}

/// Copies `pieces` into `buf`, each destination's bytes together in piece order (the
/// order a receiver expects them in); returns the round's counts and displacements.
fn pack_pieces(
    pieces: &[Piece],
    maps: &[Option<memmap2::Mmap>],
    n: usize,
    buf: &mut Vec<u8>,
) -> (Vec<usize>, Vec<usize>) {
    buf.clear();
    let mut counts = vec![0; n];
    let mut displs = vec![0; n];
    for (dest, (count, displ)) in counts.iter_mut().zip(&mut displs).enumerate() {
        *displ = buf.len();
        for p in pieces {
            let map = maps[p.file].as_deref().unwrap_or(&[]);
            buf.extend_from_slice(&map[p.displs[dest]..p.displs[dest] + p.counts[dest]]);
            *count += p.counts[dest];
        }
    }
    (counts, displs)
}

/// The error an injected fault raises.
fn injected(shuffle: ShuffleId, me: usize, step: &str) -> Error {
    Error::Other(format!(
        "shuffle {shuffle}: executor {me} failed {step} (injected)"
    ))
}

fn corrupt(shuffle: ShuffleId, source: usize, detail: String) -> Error {
    Error::CorruptShuffle {
        shuffle,
        executor: source.into(),
        detail,
    }
}

/// Checks one source's announced runs: each a partition that this executor `me` owns.
pub fn check_runs(
    runs: &[(u32, u64, u64)],
    shuffle: ShuffleId,
    owners: &[usize],
    me: usize,
    source: usize,
) -> Result<()> {
    for &(r, _, len) in runs {
        match owners.get(r as usize) {
            None => {
                return Err(corrupt(
                    shuffle,
                    source,
                    format!("reduce partition {r} of {}", owners.len()),
                ));
            }
            Some(&o) if o != me => {
                return Err(corrupt(
                    shuffle,
                    source,
                    format!("partition {r} belongs to executor {o}"),
                ));
            }
            Some(_) if usize::try_from(len).is_err() => {
                return Err(corrupt(shuffle, source, format!("a run of {len} bytes")));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_runs_must_be_owned_partitions() {
        assert!(check_runs(&[(0, 0, 5), (2, 5, 7)], ShuffleId(1), &[3, 4, 3], 3, 4).is_ok());
        for runs in [vec![(9, 0, 1)], vec![(1, 0, 1)]] {
            let err = check_runs(&runs, ShuffleId(6), &[3, 4, 3], 3, 4)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("shuffle 6: corrupt data from executor 4"),
                "{err}"
            );
        }
    }

    #[test]
    fn metadata_round_trips_and_garbage_is_rejected() {
        let listing = vec![FileRuns {
            path: "/dev/shm/x/shuffle-1-map-2.data".into(),
            window_offset: 4096,
            runs: vec![(0, 0, 5), (3, 5, 9)],
        }];
        let bytes = codec::encode(&listing);
        assert_eq!(codec::decode::<Vec<FileRuns>>(&bytes), Ok(listing));
        assert!(codec::decode::<Vec<FileRuns>>(&bytes[..bytes.len() - 2]).is_err());
    }

    /// Runs one shuffle over `n` in-process executors (world ranks 1..=n, all on one node
    /// unless `nodes` says otherwise) and returns what each reduce partition received, in
    /// source order, with the per-executor (bytes, rounds).
    #[allow(clippy::type_complexity)]
    fn run_exchange(
        n: usize,
        maps_per_executor: usize,
        partitions: usize,
        mode: ShuffleMode,
        round_bytes: usize,
        node_of: fn(usize) -> usize,
    ) -> (Vec<Vec<u8>>, Vec<Exchanged>) {
        let outcomes = exchange_outcomes(
            n,
            maps_per_executor,
            partitions,
            mode,
            round_bytes,
            node_of,
            None,
        );
        let mut got = vec![Vec::new(); partitions];
        let mut stats = Vec::new();
        for outcome in outcomes {
            let (mine, s) = outcome.unwrap();
            for (r, bytes) in mine {
                got[r] = bytes;
            }
            stats.push(s);
        }
        (got, stats)
    }

    /// Each executor's outcome: its partitions' bytes and (bytes, rounds), or its error.
    /// `fault` = (executor id, fault it injects).
    #[allow(clippy::type_complexity)]
    fn exchange_outcomes(
        n: usize,
        maps_per_executor: usize,
        partitions: usize,
        mode: ShuffleMode,
        round_bytes: usize,
        node_of: fn(usize) -> usize,
        fault: Option<(usize, ShuffleFault)>,
    ) -> Vec<Result<(Vec<(usize, Vec<u8>)>, Exchanged)>> {
        use crate::io::scratch::ScratchDir;
        use crate::shuffle::MapOutput;
        use crate::shuffle::store::ReduceInput;
        use crate::transport::local::LocalGroup;

        // In memory, as the default scratch directory: each executor keeps the buckets of
        // its own partitions in memory, the rest go to files.
        let root = tempfile::tempdir_in("/dev/shm").unwrap();
        let shuffle = ShuffleId(4);
        let owners: Vec<usize> = (0..partitions).map(|r| 1 + (r * 7 + 3) % n).collect();
        let peer_nodes: Vec<usize> = (0..n).map(node_of).collect();
        let handles: Vec<_> = LocalGroup::create(n)
            .into_iter()
            .enumerate()
            .map(|(peer, group)| {
                let (owners, peer_nodes) = (owners.clone(), peer_nodes.clone());
                let dir = root.path().to_path_buf();
                std::thread::spawn(move || {
                    let me = 1 + peer;
                    let store = ShuffleStore::new(
                        ScratchDir::create(&dir, "x", me).unwrap(),
                        ScratchDir::create(&dir, "x-spill", me).unwrap(),
                        crate::memory::MemoryManager::new(u64::MAX),
                    );
                    store.set_owners(shuffle, owners.clone());
                    for m in 0..maps_per_executor {
                        let split = peer * maps_per_executor + m;
                        let buckets = (0..partitions).map(|r| payload(split, r)).collect();
                        let output = MapOutput {
                            buckets,
                            orders: Vec::new(),
                            records: 0,
                            spills: Vec::new(),
                            reservation: None,
                        };
                        store
                            .put_map_output(shuffle, split, output, (1, 1 + peer, n))
                            .unwrap();
                    }
                    let ex = Exchange {
                        peers: &group,
                        first_id: 1,
                        store: &store,
                        peer_nodes: &peer_nodes,
                        mode,
                        round_bytes,
                        fault: fault.filter(|f| f.0 == me).map(|f| f.1),
                    };
                    let stats = exchange(&ex, shuffle)?;
                    let mine: Vec<(usize, Vec<u8>)> = (0..partitions)
                        .filter_map(|r| match store.reduce_input(shuffle, r, me) {
                            ReduceInput::Here(mut blocks) => {
                                // In-place blocks come before received ones: compare by
                                // source (each source's blocks stay in map order).
                                blocks.sort_by_key(|b| b.source);
                                Some((r, blocks.iter().flat_map(|b| b.bytes().to_vec()).collect()))
                            }
                            ReduceInput::Elsewhere(o) => {
                                assert_eq!(o, owners[r]);
                                None
                            }
                            ReduceInput::Unknown => panic!("partition {r} unknown on {me}"),
                        })
                        .collect();
                    Ok((mine, stats))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    /// The bytes map task `split` sends to reduce partition `r`: sizes vary, some empty.
    fn payload(split: usize, r: usize) -> Vec<u8> {
        let len = (split * 131 + r * 37) % 700;
        (0..len).map(|i| (split * 31 + r * 7 + i) as u8).collect()
    }

    fn expected(n: usize, maps_per_executor: usize, partitions: usize) -> Vec<Vec<u8>> {
        // Blocks arrive grouped by source executor, each source's map files in order.
        (0..partitions)
            .map(|r| {
                (0..n * maps_per_executor)
                    .flat_map(|m| payload(m, r))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn alltoallv_moves_every_byte_to_its_owner_in_many_rounds() {
        for n in [1, 2, 3, 4] {
            let (got, stats) = run_exchange(n, 3, 9, ShuffleMode::Alltoallv, 512, |_| 0);
            assert_eq!(got, expected(n, 3, 9), "{n} executors");
            let rounds = stats.iter().map(|s| s.rounds).max().unwrap();
            if n > 1 {
                assert!(
                    rounds > 3,
                    "{n} executors: a 512-byte round limit means many rounds, got {rounds}"
                );
            }
            // Every received byte is counted once, by its receiver.
            let total: u64 = got.iter().map(|g| g.len() as u64).sum();
            assert_eq!(stats.iter().map(|s| s.bytes).sum::<u64>(), total);
        }
    }

    #[test]
    fn small_map_files_share_rounds() {
        // 8 map files per executor, all of them well within one round: one round, not 8.
        for n in [2, 3, 4] {
            let (got, stats) = run_exchange(n, 8, 6, ShuffleMode::Alltoallv, 1 << 20, |_| 0);
            assert_eq!(got, expected(n, 8, 6), "{n} executors");
            assert!(stats.iter().all(|s| s.rounds == 1), "{n}: {stats:?}");
        }
        // A quota a few files fill: rounds follow the bytes, data still in order.
        let (got, stats) = run_exchange(3, 8, 6, ShuffleMode::Alltoallv, 6000, |_| 0);
        assert_eq!(got, expected(3, 8, 6));
        let rounds = stats.iter().map(|s| s.rounds).max().unwrap();
        assert!((2..8).contains(&rounds), "{stats:?}");
    }

    #[test]
    fn auto_reads_co_located_map_files_in_place_and_sends_the_rest() {
        // Two "nodes": executors 1, 2 on one, 3, 4 on the other.
        let (got, stats) = run_exchange(4, 2, 6, ShuffleMode::Auto, 1 << 20, |p| p / 2);
        assert_eq!(got, expected(4, 2, 6));
        assert!(
            stats
                .iter()
                .all(|s| s.rounds >= 1 && s.cross_node > 0 && s.cross_node < s.bytes),
            "cross-node data goes by rounds, co-located data does not: {stats:?}"
        );
        let (got, stats) = run_exchange(3, 2, 5, ShuffleMode::Auto, 1 << 20, |_| 0);
        assert_eq!(got, expected(3, 2, 5));
        assert!(
            stats.iter().all(|s| s.rounds == 0 && s.cross_node == 0),
            "one node: no MPI rounds"
        );
    }

    #[test]
    fn rma_without_windows_falls_back_to_alltoallv_with_the_same_data() {
        // The in-process transport makes no windows: every executor falls back together.
        let (got, _) = run_exchange(3, 2, 7, ShuffleMode::Rma, 4096, |_| 0);
        assert_eq!(got, expected(3, 2, 7));
    }

    #[test]
    fn a_failure_on_one_executor_ends_the_exchange_on_all_of_them() {
        for (mode, fault) in [
            (ShuffleMode::Alltoallv, ShuffleFault::FailPrepare),
            (ShuffleMode::Alltoallv, ShuffleFault::Fail),
            (ShuffleMode::Alltoallv, ShuffleFault::FailRound),
            (ShuffleMode::Auto, ShuffleFault::Fail),
            (ShuffleMode::Auto, ShuffleFault::FailRound),
            (ShuffleMode::Rma, ShuffleFault::Fail),
        ] {
            // Without agreement the others would wait in the next collective forever.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(exchange_outcomes(
                    3,
                    2,
                    5,
                    mode,
                    512,
                    |p| p,
                    Some((2, fault)),
                ));
            });
            let outcomes = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("{mode:?}: the exchange hung after a failure"));
            let errors: Vec<String> = outcomes
                .into_iter()
                .map(|o| o.expect_err("every executor fails").to_string())
                .collect();
            assert!(errors[1].contains("executor 2 failed"), "{errors:?}");
            assert!(errors[0].contains("exchange abandoned"), "{errors:?}");
            assert!(errors[2].contains("exchange abandoned"), "{errors:?}");
        }
    }
}
