use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::{encode_into, take_from};

fn bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_into(&mut buf, value).unwrap();
    buf
}

fn read<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match take_from::<T>(bytes, 0) {
        Ok((value, end)) if end == bytes.len() => Ok(value),
        Ok((_, end)) => Err(format!("{} bytes left over", bytes.len() - end)),
        Err(e) => Err(e.0),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(f64),
    Segment(i32, i32),
    Named { name: String, sides: Option<u8> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    id: u64,
    word: crate::Str,
    shapes: Vec<Shape>,
    tags: BTreeMap<u16, bool>,
    unit: (),
    wide: i128,
    letter: char,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Empty),
        (-1e9f64..1e9).prop_map(Shape::Circle),
        any::<(i32, i32)>().prop_map(|(a, b)| Shape::Segment(a, b)),
        (".{0,30}", any::<Option<u8>>()).prop_map(|(name, sides)| Shape::Named { name, sides }),
    ]
}

fn row() -> impl Strategy<Value = Row> {
    (
        any::<u64>(),
        ".{0,40}",
        prop::collection::vec(shape(), 0..6),
        prop::collection::btree_map(any::<u16>(), any::<bool>(), 0..5),
        any::<i128>(),
        any::<char>(),
    )
        .prop_map(|(id, word, shapes, tags, wide, letter)| Row {
            id,
            word: word.as_str().into(),
            shapes,
            tags,
            unit: (),
            wide,
            letter,
        })
}

proptest! {
    /// Every value reads back as itself, ending where it was written to end, and every
    /// shorter prefix of its bytes is an error, not a value.
    #[test]
    fn values_round_trip_and_every_truncation_is_an_error(row in row()) {
        let b = bytes(&row);
        prop_assert_eq!(read::<Row>(&b), Ok(row.clone()));
        for cut in 0..b.len() {
            prop_assert!(read::<Row>(&b[..cut]).is_err(), "{cut} of {} bytes read", b.len());
        }
        // Records back to back: each starts where the one before ended.
        let mut two = b.clone();
        two.extend_from_slice(&bytes(&(7u8, "x")));
        let (first, next) = take_from::<Row>(&two, 0).unwrap();
        prop_assert_eq!(first, row);
        let (second, end) = take_from::<(u8, String)>(&two, next).unwrap();
        prop_assert_eq!((second, end), ((7, "x".to_string()), two.len()));
    }
}

#[test]
fn numbers_are_fixed_width_little_endian_and_text_is_length_prefixed() {
    assert_eq!(bytes(&(1u64, -0.5f64)), {
        let mut pair = Vec::new();
        assert!(crate::codec::pairs::encode(&mut pair, &(1u64, -0.5f64)));
        pair
    });
    assert_eq!(
        bytes(&("ab", 1u32, -2i16)),
        [2, b'a', b'b', 1, 0, 0, 0, 0xfe, 0xff]
    );
    assert_eq!(bytes(&(true, Some(3u8), None::<u8>)), [1, 1, 3, 0]);
    assert_eq!(bytes(&"x".repeat(300))[..2], [0xac, 0x02]);
    assert_eq!(bytes(&vec![9u8; 2]), [2, 9, 9]);
    assert_eq!(bytes(&Shape::Segment(1, 2)), [2, 1, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(bytes(&'é'), 0xe9u32.to_le_bytes());
}

#[test]
fn invalid_bytes_are_errors_naming_what_and_where() {
    let cases: [(Result<(), String>, &str); 8] = [
        (read::<bool>(&[2]).map(drop), "a bool of 2 at byte 0"),
        (read::<Option<u8>>(&[7, 1]).map(drop), "an option tag of 7"),
        (read::<String>(&[2, 0xc3, 0x28]).map(drop), "not UTF-8"),
        (
            read::<char>(&0xd800u32.to_le_bytes()).map(drop),
            "is not a character",
        ),
        (read::<Vec<u8>>(&[0xff; 11]).map(drop), "past 64 bits"),
        (read::<Shape>(&[4]).map(drop), "variant index"),
        (
            read::<(u8, String)>(&[1, 5, b'a']).map(drop),
            "1 bytes left at byte 2 where 5",
        ),
        (
            read::<serde_json::Value>(&[0]).map(drop),
            "not self-describing",
        ),
    ];
    for (result, expected) in cases {
        let e = result.expect_err(expected);
        assert!(e.contains(expected), "{e:?} does not say {expected:?}");
    }
}
