//! Estimates of what records take in memory once decoded (Spark's `SizeEstimator`), for
//! reservations: a `String` or `Vec` costs its inline size plus the heap it owns, which
//! the encoded size says little about (a 3-letter word is 4 bytes encoded, 27 decoded).
//!
//! The estimate walks a value through serde (every record type is `Serialize`): a
//! string or byte slice owns its length on the heap; a sequence or map owns its elements'
//! inline sizes (and what they own in turn). Heap bytes are counted as used, not as
//! allocated (allocator size classes and spare capacity are not seen).

use serde::ser::{self, Serialize};

/// The heap bytes `value` owns (its inline `size_of` aside).
pub fn heap_size<T: Serialize + ?Sized>(value: &T) -> u64 {
    let mut counter = HeapCounter { bytes: 0, depth: 0 };
    // The counter never fails; a type whose `Serialize` fails counts what it reached.
    let _ = value.serialize(&mut counter);
    counter.bytes
}

/// The decoded size of `value`: its inline size and the heap it owns.
pub fn decoded_size<T: Serialize>(value: &T) -> u64 {
    std::mem::size_of::<T>() as u64 + heap_size(value)
}

/// How many records a sample looks at.
const SAMPLE: usize = 64;

/// The decoded size of `records`: the inline size of each, plus the heap owned by an
/// evenly spread sample of them, scaled up (exact for records that own no heap).
pub fn decoded_size_of_slice<T: Serialize>(records: &[T]) -> u64 {
    let inline = std::mem::size_of_val(records) as u64;
    if records.is_empty() {
        return 0;
    }
    let step = records.len().div_ceil(SAMPLE);
    let (mut heap, mut seen) = (0u64, 0u64);
    for r in records.iter().step_by(step) {
        heap += heap_size(r);
        seen += 1;
    }
    inline + heap * records.len() as u64 / seen
}

/// A running estimate of what the entries of a growing map take: the heap of sampled
/// entries, weighted towards recent ones (combiners that grow, like a group's values,
/// are larger later), times the number of entries.
#[derive(Debug, Default, Clone)]
pub struct EntrySizes {
    /// Exponentially weighted mean heap bytes per entry.
    mean: f64,
    samples: u64,
}

impl EntrySizes {
    /// Counts one sampled entry owning `heap` bytes.
    pub fn sample(&mut self, heap: u64) {
        self.samples += 1;
        let weight = (1.0 / self.samples as f64).max(1.0 / 16.0);
        self.mean += (heap as f64 - self.mean) * weight;
    }

    /// The estimated heap of `entries` entries.
    pub fn heap_of(&self, entries: usize) -> u64 {
        (self.mean * entries as f64) as u64
    }
}

/// The most records (or entries) a task of one operation has held in a buffer or map:
/// later tasks start theirs that large, a little over, instead of growing them by copying
/// into fresh memory (`ShuffleDependency::bucket_sizes` keeps one per shuffle bucket).
/// Capacity only: memory no record is written to is never touched.
#[derive(Debug, Default)]
pub struct SizeHint(std::sync::atomic::AtomicUsize);

impl SizeHint {
    /// Notes a task's `n`.
    pub fn note(&self, n: usize) {
        self.0.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The capacity to start with: an eighth over the largest noted.
    pub fn expected(&self) -> usize {
        let seen = self.0.load(std::sync::atomic::Ordering::Relaxed);
        seen + seen / 8
    }
}

struct HeapCounter {
    bytes: u64,
    /// How many sequences or maps enclose the value being walked: inside one, a value's
    /// inline size is on its owner's heap.
    depth: u32,
}

impl HeapCounter {
    fn inline(&mut self, bytes: u64) -> Result<(), Never> {
        if self.depth > 0 {
            self.bytes += bytes;
        }
        Ok(())
    }

    /// A string, byte slice or collection: its inline handle and its heap buffer.
    fn owned(&mut self, heap: u64) -> Result<(), Never> {
        self.inline(24)?;
        self.bytes += heap;
        Ok(())
    }

    fn open(&mut self) -> Result<&mut Self, Never> {
        self.inline(24)?;
        self.depth += 1;
        Ok(self)
    }
}

/// The counter's error type: it never fails.
#[derive(Debug)]
pub struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("size estimate")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Never
    }
}

macro_rules! primitives {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method(self, _: $ty) -> Result<(), Never> {
            self.inline(std::mem::size_of::<$ty>() as u64)
        })*
    };
}

impl<'a> ser::Serializer for &'a mut HeapCounter {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Collection<'a>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Collection<'a>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    primitives!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char,
    );

    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.owned(v.len() as u64)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
        self.owned(v.len() as u64)
    }
    fn serialize_none(self) -> Result<(), Never> {
        self.inline(8)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Never> {
        self.inline(8)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.inline(8)?;
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Collection<'a>, Never> {
        Ok(Collection(self.open()?))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        self.inline(8)?;
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Collection<'a>, Never> {
        Ok(Collection(self.open()?))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        self.inline(8)?;
        Ok(self)
    }
}

/// A sequence or map being walked: its elements are on its heap.
pub struct Collection<'a>(&'a mut HeapCounter);

impl ser::SerializeSeq for Collection<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut *self.0)
    }
    fn end(self) -> Result<(), Never> {
        self.0.depth -= 1;
        Ok(())
    }
}

impl ser::SerializeMap for Collection<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Never> {
        key.serialize(&mut *self.0)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut *self.0)
    }
    fn end(self) -> Result<(), Never> {
        self.0.depth -= 1;
        Ok(())
    }
}

macro_rules! fields {
    ($($trait:ident :: $method:ident ($($name:ty)?)),* $(,)?) => {
        $(impl ser::$trait for &mut HeapCounter {
            type Ok = ();
            type Error = Never;
            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $(_: $name,)?
                value: &T,
            ) -> Result<(), Never> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Never> {
                Ok(())
            }
        })*
    };
}

fields!(
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(&'static str),
    SerializeStructVariant::serialize_field(&'static str),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_memory_is_counted_and_inline_memory_once() {
        assert_eq!(heap_size(&7u64), 0);
        assert_eq!(heap_size(&(1u32, 2.0f64)), 0);
        assert_eq!(heap_size(&"word".to_string()), 4);
        assert_eq!(decoded_size(&"word".to_string()), 24 + 4);
        // A Vec of u64 owns 8 bytes per element; of Strings, 24 and their bytes.
        assert_eq!(heap_size(&vec![1u64, 2, 3]), 24);
        let words = vec!["ab".to_string(), "cde".to_string()];
        assert_eq!(heap_size(&words), 2 * 24 + 5);
        // A group: (key, values) with a String key and Vec<(u32, String)> values.
        let group = ("k".to_string(), vec![(1u32, "xy".to_string())]);
        assert_eq!(heap_size(&group), 1 + (4 + 24) + 2);
        assert_eq!(heap_size(&Some(vec![0u8; 10])), 10);
    }

    #[test]
    fn a_slice_is_estimated_from_a_sample() {
        let rows: Vec<(u64, String)> = (0..10_000).map(|i| (i, "x".repeat(10))).collect();
        assert_eq!(decoded_size_of_slice(&rows), 10_000 * (32 + 10));
        let plain: Vec<u64> = (0..1000).collect();
        assert_eq!(decoded_size_of_slice(&plain), 8000);
    }

    #[test]
    fn entry_sizes_follow_growing_entries() {
        let mut sizes = EntrySizes::default();
        for heap in 0..1000u64 {
            sizes.sample(heap);
        }
        // Weighted towards the recent (larger) samples, not the plain mean (499.5).
        assert!(sizes.heap_of(1) > 900, "{}", sizes.heap_of(1));
    }
}
