//! The exchange: executors move every reduce partition's bytes to its owner with
//! `MPI_Alltoall` (counts) and `MPI_Alltoallv` (data) over the executor group, in rounds.
//!
//! 1. Metadata: each executor tells each destination which (partition, length) runs it
//!    will send, in order (one small all-to-all). The receiver checks them (partition in
//!    range and owned by it) and sizes one reduce file for everything it will receive.
//! 2. Rounds: each round sends at most `round_bytes / executors` to each destination,
//!    straight from a mapped map file, received straight into the mapped reduce file, so
//!    an executor's memory stays at its own data plus one round. Every executor runs the
//!    same number of rounds (the maximum, agreed first).
//! 3. The receiver checks that every source sent exactly what it announced; anything else
//!    is `CorruptShuffle` naming the shuffle and the source executor.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::shuffle::ShuffleId;
use crate::shuffle::files::{create_private, map_read};
use crate::shuffle::store::{Block, ReduceSide};
use crate::transport::prefix_sums;

const META_ENTRY: usize = 12;

/// A fault to inject, for tests: `EMBER_TEST_SHUFFLE_FAULT=corrupt:<executor>` overwrites
/// that executor's map data with garbage, `truncate:<executor>` makes it send one byte
/// less than it announces.
fn injected_fault(me: usize) -> Option<&'static str> {
    let spec = std::env::var("EMBER_TEST_SHUFFLE_FAULT").ok()?;
    let (kind, who) = spec.split_once(':')?;
    let kind = if kind == "corrupt" {
        "corrupt"
    } else {
        "truncate"
    };
    (who.parse::<usize>().ok()? == me).then_some(kind)
}

/// Runs this executor's part of exchanging `shuffle`. Returns the bytes received and the
/// number of rounds.
pub fn exchange(executor: &Executor, shuffle: ShuffleId, round_bytes: usize) -> Result<(u64, u32)> {
    let peers = executor.peers.as_ref();
    let (n, me) = (peers.size(), executor.info.id);
    let first_id = me - peers.rank();
    let owners = executor.shuffle.owners(shuffle)?;
    let files = executor.shuffle.take_map_files(shuffle);
    let fault = injected_fault(me);

    // 1. Metadata.
    let mut meta_send: Vec<Vec<u8>> = vec![Vec::new(); n];
    for f in &files {
        for (peer, parts) in f.parts.iter().enumerate() {
            for &(r, len) in parts {
                meta_send[peer].extend_from_slice(&r.to_le_bytes());
                meta_send[peer].extend_from_slice(&len.to_le_bytes());
            }
        }
    }
    let meta_counts: Vec<usize> = meta_send.iter().map(Vec::len).collect();
    let meta = peers.all_to_all_v(&meta_send.concat(), &meta_counts)?;
    let announced: Vec<Vec<(usize, usize)>> = (0..n)
        .map(|peer| parse_meta(meta.from_rank(peer), shuffle, &owners, me, first_id + peer))
        .collect::<Result<_>>()?;
    let totals: Vec<usize> = announced
        .iter()
        .map(|a| a.iter().map(|x| x.1).sum())
        .collect();
    let base = prefix_sums(&totals);
    let total: usize = totals.iter().sum();

    let mut blocks: HashMap<usize, Vec<Block>> = HashMap::new();
    for (peer, list) in announced.iter().enumerate() {
        let mut at = base[peer];
        for &(r, len) in list {
            blocks.entry(r).or_default().push(Block {
                source: first_id + peer,
                range: at..at + len,
            });
            at += len;
        }
    }

    // The reduce file receives everything, in place.
    let reduce_path = executor
        .shuffle
        .dir()
        .join(format!("shuffle-{shuffle}-reduce.data"));
    let reduce_file = create_private(&reduce_path)?;
    reduce_file
        .set_len(total as u64)
        .map_err(|e| Error::io(&reduce_path, e))?;
    let mut reduce_map = if total > 0 {
        // SAFETY: a fresh private file of ours; no one else maps or truncates it.
        Some(
            unsafe { memmap2::MmapMut::map_mut(&reduce_file) }
                .map_err(|e| Error::io(&reduce_path, e))?,
        )
    } else {
        None
    };

    // 2. Rounds.
    let quota = (round_bytes / n).max(1);
    let maps = files
        .iter()
        .map(|f| {
            if fault == Some("corrupt") && f.bytes() > 0 {
                std::fs::write(&f.data, vec![0xff; f.bytes() as usize])
                    .map_err(|e| Error::io(&f.data, e))?;
            }
            map_read(&f.data)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut plan: Vec<(usize, u64)> = Vec::new(); // (file, round within file)
    for (i, f) in files.iter().enumerate() {
        let rounds = f
            .runs
            .iter()
            .map(|r| r.1.div_ceil(quota as u64))
            .max()
            .unwrap_or(0);
        plan.extend((0..rounds).map(|k| (i, k)));
    }
    let rounds = peers.all_max(plan.len() as u64)? as usize;
    let mut cursor = base.clone();
    let mut sent_short = fault == Some("truncate");
    for round in 0..rounds {
        let (send, mut counts, displs): (&[u8], Vec<usize>, Vec<usize>) = match plan.get(round) {
            Some(&(i, k)) => {
                let map = maps[i].as_deref().unwrap_or(&[]);
                let q = quota as u64;
                let counts = files[i]
                    .runs
                    .iter()
                    .map(|&(_, len)| len.saturating_sub(k * q).min(q) as usize)
                    .collect();
                let displs = files[i]
                    .runs
                    .iter()
                    .map(|&(off, len)| (off + (k * q).min(len)) as usize)
                    .collect();
                (map, counts, displs)
            }
            None => (&[], vec![0; n], vec![0; n]),
        };
        if sent_short && let Some(c) = counts.iter_mut().find(|c| **c > 0) {
            *c -= 1;
            sent_short = false;
        }
        let recv_counts = peers.all_to_all_counts(&counts)?;
        for peer in 0..n {
            if cursor[peer] + recv_counts[peer] > base[peer] + totals[peer] {
                return Err(corrupt(
                    shuffle,
                    first_id + peer,
                    format!("sent more than the {} bytes it announced", totals[peer]),
                ));
            }
        }
        let recv: &mut [u8] = reduce_map.as_deref_mut().unwrap_or(&mut []);
        peers.all_to_all_v_into(send, &counts, &displs, recv, &recv_counts, &cursor)?;
        for peer in 0..n {
            cursor[peer] += recv_counts[peer];
        }
    }
    for peer in 0..n {
        let got = cursor[peer] - base[peer];
        if got != totals[peer] {
            return Err(corrupt(
                shuffle,
                first_id + peer,
                format!(
                    "truncated: {got} of the {} bytes it announced arrived",
                    totals[peer]
                ),
            ));
        }
    }
    drop(maps);
    files.iter().for_each(|f| f.remove());

    let data = match reduce_map {
        Some(m) => Some(Arc::new(
            m.make_read_only().map_err(|e| Error::io(&reduce_path, e))?,
        )),
        None => None,
    };
    executor.shuffle.put_reduce_side(
        shuffle,
        ReduceSide {
            owners,
            data,
            blocks,
        },
    );
    Ok((total as u64, rounds as u32))
}

fn corrupt(shuffle: ShuffleId, source: usize, detail: String) -> Error {
    Error::CorruptShuffle {
        shuffle,
        source_rank: source,
        detail,
    }
}

/// Parses one source's announcement: (reduce partition, length) runs, each of which must
/// be a partition this executor `me` owns.
pub fn parse_meta(
    bytes: &[u8],
    shuffle: ShuffleId,
    owners: &[usize],
    me: usize,
    source: usize,
) -> Result<Vec<(usize, usize)>> {
    if !bytes.len().is_multiple_of(META_ENTRY) {
        return Err(corrupt(
            shuffle,
            source,
            format!("metadata of {} bytes is not whole entries", bytes.len()),
        ));
    }
    bytes
        .chunks_exact(META_ENTRY)
        .map(|entry| {
            let r = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]) as usize;
            let mut len = [0u8; 8];
            len.copy_from_slice(&entry[4..]);
            let len = u64::from_le_bytes(len);
            match owners.get(r) {
                None => Err(corrupt(
                    shuffle,
                    source,
                    format!("reduce partition {r} of {}", owners.len()),
                )),
                Some(&o) if o != me => Err(corrupt(
                    shuffle,
                    source,
                    format!("partition {r} belongs to executor {o}"),
                )),
                Some(_) => usize::try_from(len)
                    .map(|l| (r, l))
                    .map_err(|_| corrupt(shuffle, source, format!("a run of {len} bytes"))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(r: u32, len: u64) -> Vec<u8> {
        [r.to_le_bytes().to_vec(), len.to_le_bytes().to_vec()].concat()
    }

    #[test]
    fn metadata_lists_owned_runs() {
        let bytes = [entry(0, 5), entry(2, 7)].concat();
        assert_eq!(
            parse_meta(&bytes, 1, &[3, 4, 3], 3, 4).unwrap(),
            vec![(0, 5), (2, 7)]
        );
    }

    #[test]
    fn bad_metadata_names_shuffle_and_source() {
        let cases = [
            entry(0, 5)[..7].to_vec(), // cut short
            entry(9, 1),               // no such partition
            entry(1, 1),               // someone else's partition
        ];
        for bytes in cases {
            let err = parse_meta(&bytes, 6, &[3, 4, 3], 3, 4)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("shuffle 6: corrupt data from executor 4"),
                "{err}"
            );
        }
    }
}
