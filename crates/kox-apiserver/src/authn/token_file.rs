//! Static bearer tokens from `--token-auth-file`, upstream's CSV format:
//! `token,user,uid,"group1,group2"` (the groups column is optional; further columns are ignored).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::user::UserInfo;

/// The tokens of a token file.
#[derive(Debug, Default)]
pub struct TokenFile {
    tokens: HashMap<String, UserInfo>,
}

impl TokenFile {
    /// Reads and parses a token file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing the token file {}", path.display()))
    }

    /// Parses the CSV text of a token file.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut tokens = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let record = parse_csv_line(line)
                .with_context(|| format!("line {}: unbalanced quotes", i + 1))?;
            if record.len() < 3 {
                bail!(
                    "line {}: a token file must have at least 3 columns (token, user name, user uid), found {}",
                    i + 1,
                    record.len()
                );
            }
            if record[0].is_empty() {
                tracing::warn!(line = i + 1, "empty token in the token file; line ignored");
                continue;
            }
            let groups = match record.get(3) {
                Some(g) => g.split(',').map(str::to_string).collect(),
                None => Vec::new(),
            };
            let user = UserInfo {
                name: record[1].clone(),
                uid: record[2].clone(),
                groups,
                ..Default::default()
            };
            if tokens.insert(record[0].clone(), user).is_some() {
                tracing::warn!(
                    line = i + 1,
                    "duplicate token in the token file; the last wins"
                );
            }
        }
        Ok(Self { tokens })
    }

    /// The user a token belongs to.
    pub fn lookup(&self, token: &str) -> Option<&UserInfo> {
        self.tokens.get(token)
    }
}

/// Splits one CSV record (RFC 4180 quoting: `"a,b"`, `""` inside quotes).
fn parse_csv_line(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return None;
    }
    fields.push(field);
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_csv_with_quoted_groups() {
        let f = TokenFile::parse("t1,jane,u-1,\"dev,ops\"\nt2,bob,u-2\n\nt3,amy,u-3,qa,ignored\n")
            .unwrap();
        let jane = f.lookup("t1").unwrap();
        assert_eq!(jane.name, "jane");
        assert_eq!(jane.uid, "u-1");
        assert_eq!(jane.groups, ["dev", "ops"]);
        assert!(f.lookup("t2").unwrap().groups.is_empty());
        assert_eq!(f.lookup("t3").unwrap().groups, ["qa"]);
        assert!(f.lookup("nope").is_none());
    }

    #[test]
    fn refuses_records_with_fewer_than_three_columns() {
        let err = TokenFile::parse("t1,jane\n").unwrap_err();
        assert!(format!("{err:#}").contains("at least 3 columns"), "{err:#}");
    }
}
