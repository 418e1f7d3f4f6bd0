//! How Kubernetes reads query parameters.

/// A boolean query parameter as Go's `strconv.ParseBool` reads it (what the API server's
/// parameter codec uses): `1 t T TRUE true True` and `0 f F FALSE false False`; anything else
/// is not a boolean.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_read_as_go_reads_them() {
        for (s, want) in [
            ("true", Some(true)),
            ("True", Some(true)),
            ("1", Some(true)),
            ("F", Some(false)),
            ("false", Some(false)),
            ("yes", None),
            ("", None),
        ] {
            assert_eq!(parse_bool(s), want, "{s}");
        }
    }
}
