//! The exchange: every executor sends each reduce partition's bytes to its owner in one
//! `MPI_Alltoallv` over the executor group.
//!
//! Frame format per destination: `[reduce partition: u32 LE][length: u64 LE][bytes]`,
//! repeated. Received frames are validated (partition in range and owned by the receiver,
//! length within the buffer); anything else is `Error::CorruptShuffle` naming the sender.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::shuffle::ShuffleId;
use crate::shuffle::store::Block;
use crate::transport::AlignedBytes;

const HEADER: usize = 12;

/// Runs this executor's part of exchanging `shuffle`; `owners[r]` is the executor id that
/// owns reduce partition `r`. Returns the bytes received.
pub fn exchange(executor: &Executor, shuffle: ShuffleId, owners: &[usize]) -> Result<u64> {
    let peers = executor.peers.as_ref();
    let first_id = executor.info.id - peers.rank();
    let outputs = executor.shuffle.take_map_outputs(shuffle);

    let mut per_dest: Vec<Vec<u8>> = vec![Vec::new(); peers.size()];
    for (_, output) in &outputs {
        for (r, bytes) in output.buckets.iter().enumerate() {
            if bytes.is_empty() {
                continue;
            }
            let dest = owners[r] - first_id;
            let frame = &mut per_dest[dest];
            frame.extend_from_slice(&(r as u32).to_le_bytes());
            frame.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            frame.extend_from_slice(bytes);
        }
    }
    drop(outputs);
    let counts: Vec<usize> = per_dest.iter().map(Vec::len).collect();
    let send = per_dest.concat();
    drop(per_dest);

    let received = peers.all_to_all_v(&send, &counts)?;
    drop(send);
    let total = received.bytes.len() as u64;
    let counts = received.counts.clone();
    let data = Arc::new(received.bytes);
    let blocks = parse_frames(&data, &counts, shuffle, owners, executor.info.id, first_id)?;
    executor
        .shuffle
        .put_reduce_side(shuffle, owners.to_vec(), blocks);
    Ok(total)
}

/// Splits the received bytes (`counts[i]` from peer `i`) into blocks per reduce partition.
pub fn parse_frames(
    data: &Arc<AlignedBytes>,
    counts: &[usize],
    shuffle: ShuffleId,
    owners: &[usize],
    me: usize,
    first_id: usize,
) -> Result<HashMap<usize, Vec<Block>>> {
    let bytes = data.as_bytes();
    let mut blocks: HashMap<usize, Vec<Block>> = HashMap::new();
    let mut at = 0usize;
    for (peer, &count) in counts.iter().enumerate() {
        let source = first_id + peer;
        let corrupt = |detail: String| Error::CorruptShuffle {
            shuffle,
            source_rank: source,
            detail,
        };
        let end = at + count;
        while at < end {
            if end - at < HEADER {
                return Err(corrupt(format!("truncated frame header at byte {at}")));
            }
            let r = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default()) as usize;
            let len = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().unwrap_or_default());
            at += HEADER;
            if r >= owners.len() {
                return Err(corrupt(format!("reduce partition {r} of {}", owners.len())));
            }
            if owners[r] != me {
                return Err(corrupt(format!(
                    "partition {r} belongs to executor {}",
                    owners[r]
                )));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= end - at)
                .ok_or_else(|| {
                    corrupt(format!(
                        "frame of {len} bytes overruns the {} left",
                        end - at
                    ))
                })?;
            blocks.entry(r).or_default().push(Block {
                source,
                data: Arc::clone(data),
                range: at..at + len,
            });
            at += len;
        }
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(r: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = r.to_le_bytes().to_vec();
        f.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn received(parts: &[Vec<u8>]) -> (Arc<AlignedBytes>, Vec<usize>) {
        let all = parts.concat();
        let mut b = AlignedBytes::zeroed(all.len());
        b.as_bytes_mut().copy_from_slice(&all);
        (Arc::new(b), parts.iter().map(Vec::len).collect())
    }

    #[test]
    fn frames_become_blocks_per_partition() {
        let owners = [1, 2, 1];
        let (data, counts) =
            received(&[[frame(0, b"abc"), frame(2, b"z")].concat(), frame(0, b"de")]);
        let blocks = parse_frames(&data, &counts, 7, &owners, 1, 1).unwrap();
        let p0: Vec<(usize, &[u8])> = blocks[&0].iter().map(|b| (b.source, b.bytes())).collect();
        assert_eq!(p0, [(1, &b"abc"[..]), (2, &b"de"[..])]);
        assert_eq!(blocks[&2][0].bytes(), b"z");
    }

    #[test]
    fn corrupt_and_truncated_frames_name_the_sender() {
        let owners = [1, 1];
        let cases: Vec<Vec<u8>> = vec![
            frame(0, b"abc")[..10].to_vec(), // header cut short
            frame(0, b"abc")[..13].to_vec(), // payload cut short
            frame(5, b"x"),                  // partition out of range
        ];
        for bytes in cases {
            let (data, counts) = received(&[Vec::new(), bytes]);
            let err = parse_frames(&data, &counts, 3, &owners, 1, 1).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with("shuffle 3: corrupt data from executor 2"),
                "{msg}"
            );
        }
        let (data, counts) = received(&[frame(1, b"x")]);
        let err = parse_frames(&data, &counts, 3, &[1, 2], 1, 1).unwrap_err();
        assert!(err.to_string().contains("belongs to executor 2"), "{err}");
    }
}
