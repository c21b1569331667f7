//! The files `celeriac links import` reads:
//!
//! - **CSV** (RFC 4180 quoting): a header row naming the columns `name`, `url` and optionally
//!   `is_active` (`true`/`false`/`1`/`0`/`yes`/`no`), in any order; without a header the
//!   columns are `name,url[,is_active]`.
//! - **JSON lines**: one object per line, `{"name": "…", "url": "…", "is_active": true}`
//!   (`is_active` optional, default true).
//!
//! A leading byte-order mark (Excel and WPS save "CSV UTF-8" with one) is ignored. Blank lines
//! are skipped. Every error names its line; nothing is imported from a file with an error.

use crate::error::{Error, Result};
use crate::store::NewLink;

/// A file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl Format {
    /// The format a file name implies (`.csv`; `.jsonl`, `.ndjson`, `.json`).
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

/// Parse `text` in `format`.
pub fn parse(text: &str, format: Format) -> Result<Vec<NewLink>> {
    // The BOM is no part of the first header or name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let links = match format {
        Format::Csv => parse_csv(text)?,
        Format::JsonLines => parse_json_lines(text)?,
    };
    let mut seen = std::collections::HashSet::new();
    for l in &links {
        if !seen.insert(l.name.trim()) {
            return Err(Error::Invalid(format!(
                "the name {:?} appears twice in the file; names must be unique",
                l.name
            )));
        }
    }
    Ok(links)
}

fn parse_json_lines(text: &str) -> Result<Vec<NewLink>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        name: String,
        url: String,
        #[serde(default = "yes")]
        is_active: bool,
    }
    fn yes() -> bool {
        true
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(line).map_err(|e| {
            Error::Invalid(format!(
                "line {}: {e}; expected {{\"name\": \"…\", \"url\": \"…\", \"is_active\": true}}",
                i + 1
            ))
        })?;
        let link = NewLink {
            name: l.name,
            url: l.url,
            is_active: l.is_active,
        };
        link.validate()
            .map_err(|e| Error::Invalid(format!("line {}: {e}", i + 1)))?;
        out.push(link);
    }
    Ok(out)
}

fn parse_csv(text: &str) -> Result<Vec<NewLink>> {
    let records = csv_records(text)?;
    let mut iter = records.into_iter().peekable();
    let (mut name_col, mut url_col, mut active_col) = (0, 1, Some(2));
    if let Some((_, first)) = iter.peek() {
        let lower: Vec<String> = first
            .iter()
            .map(|f| f.trim().to_ascii_lowercase())
            .collect();
        if lower.iter().any(|f| f == "name") && lower.iter().any(|f| f == "url") {
            name_col = lower.iter().position(|f| f == "name").unwrap_or(0);
            url_col = lower.iter().position(|f| f == "url").unwrap_or(1);
            active_col = lower.iter().position(|f| f == "is_active");
            iter.next();
        }
    }
    let mut out = Vec::new();
    for (line, fields) in iter {
        let get = |i: usize| fields.get(i).map(|s| s.trim().to_string());
        let (Some(name), Some(url)) = (get(name_col), get(url_col)) else {
            return Err(Error::Invalid(format!(
                "line {line}: expected at least the columns name,url"
            )));
        };
        let is_active = match active_col.and_then(get).as_deref() {
            None | Some("") => true,
            Some(v) => parse_bool(v).ok_or_else(|| {
                Error::Invalid(format!(
                    "line {line}: is_active {v:?}: expected true/false, 1/0 or yes/no"
                ))
            })?,
        };
        let link = NewLink {
            name,
            url,
            is_active,
        };
        link.validate()
            .map_err(|e| Error::Invalid(format!("line {line}: {e}")))?;
        out.push(link);
    }
    Ok(out)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" => Some(true),
        "false" | "0" | "no" | "n" => Some(false),
        _ => None,
    }
}

/// Split CSV into records of fields, each with the line it starts on. Quoted fields may hold
/// commas, doubled quotes and newlines.
fn csv_records(text: &str) -> Result<Vec<(usize, Vec<String>)>> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut line = 1;
    let mut start_line = 1;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                in_quotes = true;
                any = true;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                any = true;
            }
            '\r' => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                if any || fields.iter().any(|f| !f.trim().is_empty()) {
                    records.push((start_line, std::mem::take(&mut fields)));
                } else {
                    fields.clear();
                }
                any = false;
                line += 1;
                start_line = line;
            }
            _ => {
                field.push(c);
                any = true;
            }
        }
    }
    if in_quotes {
        return Err(Error::Invalid(format!(
            "line {start_line}: a quoted field is not closed"
        )));
    }
    if any || !field.is_empty() {
        fields.push(field);
        records.push((start_line, fields));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, url: &str, is_active: bool) -> NewLink {
        NewLink {
            name: name.into(),
            url: url.into(),
            is_active,
        }
    }

    #[test]
    fn csv_with_header_quotes_and_blank_lines() {
        let text = "url,name,is_active\r\nhttps://a.example/,\"A, the first\",yes\n\n\"https://b.example/\",\"B \"\"quoted\"\"\",0\nhttps://c.example/,C,\n";
        assert_eq!(
            parse(text, Format::Csv).unwrap(),
            vec![
                link("A, the first", "https://a.example/", true),
                link("B \"quoted\"", "https://b.example/", false),
                link("C", "https://c.example/", true),
            ]
        );
    }

    #[test]
    fn csv_without_header() {
        assert_eq!(
            parse(
                "A,https://a.example/\nB,http://b.example/x,false",
                Format::Csv
            )
            .unwrap(),
            vec![
                link("A", "https://a.example/", true),
                link("B", "http://b.example/x", false)
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("name,url\nA,https://a.example/\nB,not-a-url\n", Format::Csv)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 3:"), "{e}");
        let e = parse("A,https://a.example/,maybe", Format::Csv)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("maybe"), "{e}");
        let e = parse("\"A,https://a.example/", Format::Csv)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not closed"), "{e}");
        let e = parse(
            "{\"name\":\"A\",\"url\":\"https://a.example/\"}\n{\"name\":\"B\"}\n",
            Format::JsonLines,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("line 2:") && e.contains("url"), "{e}");
        let e = parse("A,https://a.example/\nA,https://b.example/", Format::Csv)
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn a_leading_bom_is_ignored() {
        let with_header = "\u{feff}name,url\r\nA,https://a.example/\r\n";
        assert_eq!(
            parse(with_header, Format::Csv).unwrap(),
            vec![link("A", "https://a.example/", true)]
        );
        let without = "\u{feff}A,https://a.example/\n";
        assert_eq!(
            parse(without, Format::Csv).unwrap(),
            vec![link("A", "https://a.example/", true)]
        );
        let json = "\u{feff}{\"name\":\"A\",\"url\":\"https://a.example/\"}\n";
        assert_eq!(
            parse(json, Format::JsonLines).unwrap(),
            vec![link("A", "https://a.example/", true)]
        );
    }

    #[test]
    fn json_lines() {
        let text = "{\"name\":\"A\",\"url\":\"https://a.example/\"}\n\n{\"name\":\"B\",\"url\":\"https://b.example/\",\"is_active\":false}\n";
        assert_eq!(
            parse(text, Format::JsonLines).unwrap(),
            vec![
                link("A", "https://a.example/", true),
                link("B", "https://b.example/", false)
            ]
        );
    }
}
