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

/// [`parse_point`] for points of `dimension` coordinates each: a point with any other
/// number of them is an error naming both (a point cut short would otherwise be compared
/// on the coordinates it has, and summed into a centre's first ones).
///
/// ```
/// use ember::io::points::parse_point_of;
/// let parse = parse_point_of(2);
/// assert_eq!(parse("1 2"), Ok(Some(vec![1.0, 2.0])));
/// assert_eq!(parse(""), Ok(None));
/// assert!(parse("1 2 3").unwrap_err().contains("3 coordinates"));
/// ```
pub fn parse_point_of(
    dimension: usize,
) -> impl Fn(&str) -> Result<Option<Vec<f64>>, String> + Send + Sync + Copy + 'static {
    move |line| match parse_point(line)? {
        Some(point) if point.len() != dimension => Err(format!(
            "a point of {} coordinates where the first point has {dimension}: {:?}",
            point.len(),
            line.trim()
        )),
        parsed => Ok(parsed),
    }
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
        let parse = parse_point_of(3);
        assert_eq!(parse(" 1 2 3"), Ok(Some(vec![1.0, 2.0, 3.0])));
        assert_eq!(parse("\t"), Ok(None));
        for (line, n) in [("1 2", 2), ("1 2 3 4", 4)] {
            let e = parse(line).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "a point of {n} coordinates where the first point has 3"
                )),
                "{e}"
            );
        }
        assert!(
            parse("1 x 3")
                .unwrap_err()
                .contains("\"x\" is not a number")
        );
        for (line, token) in [("1 2,5", "2,5"), ("x", "x"), ("1 2 --3", "--3")] {
            let e = parse_point(line).unwrap_err();
            assert!(
                e.contains(&format!("{token:?} is not a number")),
                "{line}: {e}"
            );
        }
    }
}
