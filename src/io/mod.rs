//! I/O: file sources (text, fixed-size binary records) and committed output directories.

pub mod binary;
pub mod datagen;
pub mod input;
pub mod output;
pub mod records;
pub mod text;
