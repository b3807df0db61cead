//! Points (`FORMATS.md`, KMeans): one point a line, its coordinates as numbers separated by
//! white space (like Spark's `kmeans_data.txt`); blank lines are skipped.

/// Parses one line of points: its coordinates, or `None` for a blank line. The error names
/// the token that is not a number (the source that reads the line adds the file and line
/// number).
///
/// ```
/// use ember::io::points::parse_point;
/// assert_eq!(parse_point("1.5 -2 3e2"), Ok(Some(vec![1.5, -2.0, 300.0])));
/// assert_eq!(parse_point("  "), Ok(None));
/// assert!(parse_point("1.5 x").unwrap_err().contains("\"x\""));
/// ```
pub fn parse_point(line: &str) -> Result<Option<Vec<f64>>, String> {
    let mut point = Vec::new();
    for x in line.split_whitespace() {
        match x.parse::<f64>() {
            Ok(v) => point.push(v),
            Err(_) => {
                return Err(format!(
                    "not a point (numbers separated by white space): {x:?} is not a number in {:?}",
                    line.trim()
                ));
            }
        }
    }
    Ok((!point.is_empty()).then_some(point))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_and_a_bad_coordinate_is_named() {
        assert_eq!(
            parse_point("0 0.5\t-1e-3 "),
            Ok(Some(vec![0.0, 0.5, -1e-3]))
        );
        assert_eq!(parse_point("7"), Ok(Some(vec![7.0])));
        assert_eq!(parse_point(""), Ok(None));
        assert_eq!(parse_point(" \t\r"), Ok(None));
        for (line, token) in [("1 2,5", "2,5"), ("x", "x"), ("1 2 --3", "--3")] {
            let e = parse_point(line).unwrap_err();
            assert!(
                e.contains(&format!("{token:?} is not a number")),
                "{line}: {e}"
            );
        }
    }
}
