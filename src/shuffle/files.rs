//! Shuffle files: the map output files in the executor's private scratch directory.
//!
//! A map output is `shuffle-S-map-M-G.data` (G: a generation), its buckets grouped by the peer that owns them
//! (so each destination's bytes are one contiguous run, sendable straight from the
//! mapping), and `shuffle-S-map-M-G.index`: for every reduce partition, its offset and
//! length as two little-endian u64s. A sort shuffle's bucket starts with a header that
//! says where its sorted runs end ([`runs_header`]). Files are 0600 in a 0700 directory,
//! removed when the executor stops or the job fails.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::scratch::create_private;
use crate::shuffle::block::BlockBytes;
use crate::shuffle::{ShuffleId, unpacked_range};

/// One map task's output on disk.
#[derive(Debug, Clone)]
pub struct MapFile {
    pub map: usize,
    pub data: PathBuf,
    pub index: PathBuf,
    /// Per destination peer: (offset, length) of its contiguous run in the data file.
    pub runs: Vec<(u64, u64)>,
    /// Per destination peer: its reduce partitions with their lengths, in file order.
    pub parts: Vec<Vec<(u32, u64)>>,
    /// The buckets of the partitions the writing executor owns, when it kept them in
    /// memory rather than in the file (see [`BlockBytes::Memory`]), by partition.
    pub own: Vec<(u32, Arc<BlockBytes>)>,
}

impl MapFile {
    /// The bytes of the file.
    pub fn bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.1).sum()
    }

    /// The bytes of the map output: the file's and those kept in memory.
    pub fn output_bytes(&self) -> u64 {
        self.bytes() + self.own.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    }
}

impl MapFile {
    /// The byte range of every reduce partition's bucket in the data file.
    pub fn bucket_ranges(&self, partitions: usize) -> Vec<std::ops::Range<usize>> {
        let mut ranges = vec![0..0; partitions];
        for (peer, parts) in self.parts.iter().enumerate() {
            let mut at = self.runs[peer].0 as usize;
            for &(r, len) in parts {
                ranges[r as usize] = at..at + len as usize;
                at += len as usize;
            }
        }
        ranges
    }
}

/// The data file name of map task `map`'s output of `shuffle`, write `generation`.
pub fn map_file_name(shuffle: ShuffleId, map: usize, generation: u64) -> String {
    format!("shuffle-{shuffle}-map-{map}-{generation}.data")
}

/// Bytes a map file gets: a slice as it stands, or all the records of a bucket in the
/// order of their packed byte ranges (see [`crate::shuffle::BucketOrder`]).
pub enum Piece<'a> {
    Bytes(&'a [u8]),
    Ordered(&'a [u8], &'a [u128]),
}

impl Piece<'_> {
    fn len(&self) -> u64 {
        match self {
            Piece::Bytes(b) | Piece::Ordered(b, _) => b.len() as u64,
        }
    }

    /// Writes the piece: an ordered one record by record ([`ordered`]); a large slice
    /// straight to the file, not through the buffer (PageRank's ~0.8 MB buckets were
    /// copied into the 1 MiB buffer first: about 1% of an executor's iteration, profiled).
    fn write_to(&self, out: &mut BufWriter<File>) -> std::io::Result<()> {
        match self {
            Piece::Bytes(b) if b.len() >= DIRECT_WRITE => {
                out.flush()?;
                out.get_mut().write_all(b)
            }
            Piece::Bytes(b) => out.write_all(b),
            Piece::Ordered(b, order) => ordered(b, order).try_for_each(|r| out.write_all(r)),
        }
    }

    /// Appends the piece's bytes to `out`, as [`Piece::write_to`] writes them.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        match self {
            Piece::Bytes(b) => out.extend_from_slice(b),
            Piece::Ordered(b, order) => ordered(b, order).for_each(|r| out.extend_from_slice(r)),
        }
    }
}

/// The records of `bucket` in `order`, fetching the records ahead into the cache meanwhile
/// (they are read at random).
fn ordered<'a>(bucket: &'a [u8], order: &'a [u128]) -> impl Iterator<Item = &'a [u8]> {
    order.iter().enumerate().map(move |(i, &record)| {
        if let Some(&ahead) = order.get(i + PREFETCH_AHEAD) {
            prefetch(&bucket[unpacked_range(ahead)]);
        }
        &bucket[unpacked_range(record)]
    })
}

/// The header of a sort shuffle's bucket: each of its sorted pieces (spilled ones, then
/// the last) is a run, and the reduce side merges the runs it is told of instead of
/// reading every key first to find them. A little-endian u32 count of the non-empty
/// pieces, then each one's length as a little-endian u64.
pub fn runs_header(pieces: &[Piece]) -> Vec<u8> {
    let lens: Vec<u64> = pieces.iter().map(Piece::len).filter(|&l| l > 0).collect();
    let mut header = Vec::with_capacity(4 + 8 * lens.len());
    header.extend_from_slice(&(lens.len() as u32).to_le_bytes());
    lens.iter()
        .for_each(|l| header.extend_from_slice(&l.to_le_bytes()));
    header
}

/// The run lengths the header of a sort shuffle's bucket declares and the header's length,
/// checked against the bucket's `bytes`; else what is wrong.
pub fn read_runs_header(bytes: &[u8]) -> std::result::Result<(Vec<u64>, usize), String> {
    let le = |b: &[u8]| b.iter().rev().fold(0u64, |n, &x| n << 8 | x as u64);
    let count = bytes.get(..4).map(le).ok_or("no run header")? as usize;
    let end = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(4))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| format!("a header of {count} runs in {} bytes", bytes.len()))?;
    let lens: Vec<u64> = bytes[4..end].chunks_exact(8).map(le).collect();
    let total = lens.iter().try_fold(0u64, |sum, &l| sum.checked_add(l));
    if total != Some((bytes.len() - end) as u64) {
        return Err(format!(
            "runs of {total:?} bytes declared, {} follow the header",
            bytes.len() - end
        ));
    }
    Ok((lens, end))
}

/// Writes the buckets of map task `map` (per reduce partition, its pieces in order) to
/// `data` and its index beside it, grouped by owner: `owners[r]` is the peer index that
/// owns reduce partition `r`, of `peers`; each non-empty bucket after its
/// [`runs_header`] if `sorted`. Each write gets a new file name (a generation), so a map
/// stage that runs again never rewrites a file another executor may still have mapped.
/// `reuse`: an existing file of no shuffle any more, already at `data`, to overwrite
/// (and cut to length) instead of creating one.
pub fn write_map_file(
    data: PathBuf,
    reuse: Option<File>,
    map: usize,
    (buckets, owners, peers): (&[Vec<Piece>], &[usize], usize),
    sorted: bool,
) -> Result<MapFile> {
    let index = data.with_extension("index");
    let reused = reuse.is_some();
    let file = match reuse {
        Some(file) => file,
        None => create_private(&data)?,
    };
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut offsets = vec![(0u64, 0u64); buckets.len()];
    let mut runs = Vec::with_capacity(peers);
    let mut parts = vec![Vec::new(); peers];
    let mut at = 0u64;
    for (peer, peer_parts) in parts.iter_mut().enumerate() {
        let start = at;
        for (r, pieces) in buckets.iter().enumerate() {
            let mut len: u64 = pieces.iter().map(Piece::len).sum();
            if owners[r] != peer || len == 0 {
                continue;
            }
            if sorted {
                let header = runs_header(pieces);
                out.write_all(&header).map_err(|e| Error::io(&data, e))?;
                len += header.len() as u64;
            }
            for piece in pieces {
                piece.write_to(&mut out).map_err(|e| Error::io(&data, e))?;
            }
            offsets[r] = (at, len);
            peer_parts.push((r as u32, len));
            at += len;
        }
        runs.push((start, at - start));
    }
    out.flush().map_err(|e| Error::io(&data, e))?;
    if reused {
        // What the file held past this output goes (and its pages with it).
        out.get_ref().set_len(at).map_err(|e| Error::io(&data, e))?;
    }
    let index_bytes: Vec<u8> = offsets
        .iter()
        .flat_map(|(o, l)| o.to_le_bytes().into_iter().chain(l.to_le_bytes()))
        .collect();
    create_private(&index)?
        .write_all(&index_bytes)
        .map_err(|e| Error::io(&index, e))?;
    Ok(MapFile {
        map,
        data,
        index,
        runs,
        parts,
        own: Vec::new(),
    })
}

/// A slice at least this long is written to a map file with its own system call, not
/// copied into the writer's buffer first.
const DIRECT_WRITE: usize = 64 << 10;

/// Records ahead of the one being written whose bytes are fetched into the cache meanwhile:
/// a sorted bucket's records are read at random, and waiting for memory would dominate
/// writing them.
const PREFETCH_AHEAD: usize = 8;

/// Asks the CPU to bring the cache lines `bytes` lies on into its cache, up to
/// [`PREFETCH_LINES`] of them (a hint: no effect on the program's result). A slice that
/// starts part-way into a line can reach one line further than its length in lines: a
/// 100-byte record 40 bytes into a line lies on three, and asking for the lines of its
/// byte 0 and byte 64 only left the third to a wait on memory. Measured in a loop like
/// TeraSort's gather (4 M 100-byte records copied out at random from a 268 MB mapped
/// file, each prefetched 16 records ahead; 4 rounds each): 0.090 s without prefetching,
/// 0.049 s asking from the record's start, 0.046 s asking for every line it lies on.
#[inline(always)]
pub fn prefetch(bytes: &[u8]) {
    let start = bytes.as_ptr();
    let (into, lines) = lines_of(start as usize, bytes.len());
    for i in 0..lines {
        prefetch_line(start.wrapping_sub(into).wrapping_add(i * LINE));
    }
}

/// A cache line's bytes.
const LINE: usize = 64;

/// The most lines one [`prefetch`] asks for.
const PREFETCH_LINES: usize = 4;

/// For `len` bytes at `address`: how far into its line the first lies, and how many
/// lines (at most [`PREFETCH_LINES`]) they lie on.
#[inline(always)]
fn lines_of(address: usize, len: usize) -> (usize, usize) {
    let into = address % LINE;
    let lines = if len == 0 {
        0
    } else {
        (into + len).div_ceil(LINE)
    };
    (into, lines.min(PREFETCH_LINES))
}

/// Asks the CPU to bring the cache line at `address` into its cache: a hint, with no
/// effect on the program's result, whatever the address.
#[inline(always)]
pub fn prefetch_line(address: *const u8) {
    // SAFETY: a prefetch reads nothing the program sees and never faults, whatever the
    // address (it is not dereferenced).
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Blocks for tests of the reduce side.
#[cfg(test)]
impl crate::shuffle::block::Block {
    /// A block of all of `bytes`, from executor `source`, in a private temporary file.
    pub(crate) fn in_temp_file(source: usize, bytes: &[u8]) -> Self {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        // SAFETY: a private temporary file nobody else writes.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let data = Arc::new(BlockBytes::Mapped(map));
        Self {
            source,
            data,
            range: 0..bytes.len(),
        }
    }

    /// A sort shuffle's block: the header that declares `runs`, then the runs.
    pub(crate) fn sorted_runs(source: usize, runs: &[&[u8]]) -> Self {
        Self::in_temp_file(source, &Self::sorted_runs_bytes(runs))
    }

    /// The bytes of [`Self::sorted_runs`].
    pub(crate) fn sorted_runs_bytes(runs: &[&[u8]]) -> Vec<u8> {
        let pieces: Vec<Piece> = runs.iter().map(|r| Piece::Bytes(r)).collect();
        let mut bytes = runs_header(&pieces);
        runs.iter().for_each(|r| bytes.extend_from_slice(r));
        bytes
    }

    /// A sort shuffle's block of `runs` of records encoded by the codec.
    pub(crate) fn encoded_runs<T: serde::Serialize + 'static>(
        source: usize,
        runs: &[&[T]],
    ) -> Self {
        let runs: Vec<Vec<u8>> = runs
            .iter()
            .map(|run| {
                let mut bytes = Vec::new();
                run.iter()
                    .for_each(|r| crate::codec::encode_into(&mut bytes, r));
                bytes
            })
            .collect();
        let runs: Vec<&[u8]> = runs.iter().map(Vec::as_slice).collect();
        Self::sorted_runs(source, &runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::scratch::ScratchDir;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    #[test]
    fn a_prefetch_asks_for_every_line_the_bytes_lie_on() {
        // (address, length) -> (bytes into the first line, lines)
        let cases = [
            ((0, 0), (0, 0)),
            ((40, 0), (40, 0)),
            ((0, 1), (0, 1)),
            ((0, 64), (0, 1)),
            ((1, 64), (1, 2)),
            ((0, 100), (0, 2)),
            // A record 40 bytes into a line reaches a third line.
            ((40, 100), (40, 3)),
            ((128 + 28, 100), (28, 2)),
            ((128 + 29, 100), (29, 3)),
            // At most four lines.
            ((0, 1000), (0, PREFETCH_LINES)),
        ];
        for ((address, len), want) in cases {
            assert_eq!(lines_of(address, len), want, "{len} bytes at {address}");
        }
    }

    #[test]
    fn a_runs_header_that_does_not_describe_its_bytes_is_an_error() {
        let mut bytes = runs_header(&[Piece::Bytes(b"ab"), Piece::Bytes(b""), Piece::Bytes(b"c")]);
        bytes.extend_from_slice(b"abc");
        assert_eq!(read_runs_header(&bytes), Ok((vec![2, 1], 20)));
        for cut in [0, 3, 10, 21, 22] {
            assert!(read_runs_header(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        bytes.push(b'd');
        assert!(read_runs_header(&bytes).is_err(), "a byte past the runs");
        let huge = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert!(read_runs_header(&huge).is_err());
    }

    #[test]
    fn map_files_group_buckets_by_owner_and_are_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = ScratchDir::create(root.path(), "t", 1).unwrap();
        let buckets: Vec<Vec<Piece>> = vec![
            vec![Piece::Bytes(b"r0")],
            vec![Piece::Bytes(b"r1"), Piece::Bytes(b"-")],
            Vec::new(),
            vec![Piece::Ordered(b"!!r3", &[2 << 64 | 4, 2])],
        ];
        let owners = [1, 0, 1, 1];
        let name = map_file_name(ShuffleId(3), 7, 0);
        let f = write_map_file(
            dir.path().join(name),
            None,
            7,
            (&buckets, &owners, 2),
            false,
        )
        .unwrap();
        assert_eq!(std::fs::read(&f.data).unwrap(), b"r1-r0r3!!");
        assert_eq!(f.bucket_ranges(4), [3..5, 0..3, 0..0, 5..9]);
        assert_eq!(f.runs, vec![(0, 3), (3, 6)]);
        assert_eq!(f.parts, vec![vec![(1, 3)], vec![(0, 2), (3, 4)]]);
        let index = std::fs::read(&f.index).unwrap();
        assert_eq!(index.len(), 4 * 16);
        assert_eq!(u64::from_le_bytes(index[48..56].try_into().unwrap()), 5); // r3 at 5
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f.data), 0o600);
        assert_eq!(mode(dir.path()), 0o700);
        // A sort's buckets say where their runs end.
        let name = map_file_name(ShuffleId(3), 7, 1);
        let f =
            write_map_file(dir.path().join(name), None, 7, (&buckets, &owners, 2), true).unwrap();
        let data = std::fs::read(&f.data).unwrap();
        let r1 = &data[f.bucket_ranges(4)[1].clone()];
        assert_eq!(read_runs_header(r1), Ok((vec![2, 1], 4 + 16)));
        assert_eq!(&r1[20..], b"r1-");
        assert_eq!(f.bucket_ranges(4)[2], 0..0, "an empty bucket stays empty");
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(
            !path.exists(),
            "the scratch directory is removed with its executor"
        );
    }

    #[test]
    fn large_slices_written_past_the_buffer_keep_their_place() {
        let root = tempfile::tempdir().unwrap();
        let dir = ScratchDir::create(root.path(), "t", 1).unwrap();
        let large: Vec<u8> = (0..DIRECT_WRITE * 3 + 7).map(|i| (i % 251) as u8).collect();
        let buckets: Vec<Vec<Piece>> = vec![
            vec![
                Piece::Bytes(b"head"),
                Piece::Bytes(&large),
                Piece::Bytes(b"tail"),
            ],
            vec![Piece::Ordered(b"xyz", &[2 << 64 | 3, 1, 1 << 64 | 2])],
            vec![Piece::Bytes(&large[..DIRECT_WRITE])],
        ];
        let owners = [0, 0, 0];
        let name = map_file_name(ShuffleId(4), 1, 0);
        let f = write_map_file(
            dir.path().join(name),
            None,
            1,
            (&buckets, &owners, 1),
            false,
        )
        .unwrap();
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&large);
        expected.extend_from_slice(b"tailzxy");
        expected.extend_from_slice(&large[..DIRECT_WRITE]);
        assert_eq!(std::fs::read(&f.data).unwrap(), expected);
    }
}
