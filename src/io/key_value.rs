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
