//! I/O: input files and their splits, memory maps, private scratch files, committed output
//! directories, fixed-size record formats, edge lists, points and key-value lines. Knows files, not RDDs.

pub mod edges;
pub mod input;
pub mod key_value;
pub mod output;
pub mod points;
pub mod records;
pub mod scratch;
