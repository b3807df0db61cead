//! I/O: input files and their splits, memory maps, private scratch files, committed output
//! directories, and fixed-size record formats. Knows files, not RDDs.

pub mod input;
pub mod output;
pub mod records;
pub mod scratch;
