//! Key-value lines (`FORMATS.md`): `key,value` with an integer key and an integer value.

/// Parses one `key,value` line: two integers around one comma, white space around either
/// allowed; a blank line is `None`. The error says what is wrong with the line (the
/// source that reads it adds the file and line number).
///
/// ```
/// use ember::io::key_value::parse_key_value;
/// assert_eq!(parse_key_value("12,-5"), Ok(Some((12, -5))));
/// assert_eq!(parse_key_value(""), Ok(None));
/// assert!(parse_key_value("12;5").unwrap_err().contains("12;5"));
/// ```
pub fn parse_key_value(line: &str) -> Result<Option<(i64, i64)>, String> {
    // The common line, two ASCII integers around a comma, read byte by byte; any other
    // (blank, Unicode white space, malformed) goes the general way, which says why.
    // Profiled on the join job at 1 GB: `str` trimming, `split_once`'s char search and
    // `parse` were a fifth of an executor.
    let bytes = line.as_bytes();
    if let Some(comma) = memchr::memchr(b',', bytes)
        && let (Some(key), Some(value)) =
            (ascii_int(&bytes[..comma]), ascii_int(&bytes[comma + 1..]))
    {
        return Ok(Some((key, value)));
    }
    parse_key_value_str(line)
}

/// An integer as `i64::from_str` reads it (an optional sign, then decimal digits), with
/// ASCII white space around it; `None` for anything else or an overflow.
#[inline]
fn ascii_int(s: &[u8]) -> Option<i64> {
    let s = s.trim_ascii();
    let (negative, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (magnitude, end) = super::ascii_digits(digits, 0)?;
    if end != digits.len() {
        return None;
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// [`parse_key_value`] on `str`s: any white space, and the error for a malformed line.
fn parse_key_value_str(line: &str) -> Result<Option<(i64, i64)>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let bad = |why: &str| format!("not a key,value line ({why}): {line:?}");
    let (k, v) = line.split_once(',').ok_or_else(|| bad("no comma"))?;
    let key = k
        .trim()
        .parse()
        .map_err(|_| bad("the key is not an integer"))?;
    let value = v
        .trim()
        .parse()
        .map_err(|_| bad("the value is not an integer"))?;
    Ok(Some((key, value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_byte_reader_agrees_with_the_general_one(
            line in r"[ \t0-9+,x\u{a0}-]{0,24}|-?[0-9]{1,20},[+-]?[0-9]{1,20}"
        ) {
            prop_assert_eq!(parse_key_value(&line), parse_key_value_str(&line));
        }
    }

    #[test]
    fn the_byte_reader_reads_the_common_line_and_its_limits() {
        assert_eq!(ascii_int(b" -42 "), Some(-42));
        assert_eq!(ascii_int(b"+7"), Some(7));
        assert_eq!(ascii_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(ascii_int(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b"9223372036854775808"[..],
            b"-",
            b"",
            b"1 2",
            b"--1",
            b"1x",
        ] {
            assert_eq!(ascii_int(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn well_formed_lines_parse_and_malformed_ones_say_why() {
        assert_eq!(parse_key_value("0,0"), Ok(Some((0, 0))));
        assert_eq!(parse_key_value(" 7 , 9 "), Ok(Some((7, 9))));
        assert_eq!(
            parse_key_value("-9223372036854775808,9223372036854775807"),
            Ok(Some((i64::MIN, i64::MAX)))
        );
        assert_eq!(parse_key_value("  "), Ok(None));
        for (line, why) in [
            ("7", "no comma"),
            ("x,1", "key"),
            ("1,", "value"),
            ("1,2,3", "value"),
            ("1,2.5", "value"),
            ("99999999999999999999,1", "key"),
        ] {
            let e = parse_key_value(line).unwrap_err();
            assert!(e.contains(why) && e.contains(line), "{line}: {e}");
        }
    }
}
