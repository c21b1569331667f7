//! Human tables: every cell escaped, and never a broken id, number or name.
//!
//! On a terminal the table is fitted to its width by shortening the cells marked as free text
//! ([`free`]: errors, payloads, results) to one line ending in `…`; every other cell keeps its
//! full width, even when the table is then wider than the terminal. When standard output is
//! not a terminal nothing is shortened or wrapped.

use comfy_table::{presets::UTF8_BORDERS_ONLY, ColumnConstraint, ContentArrangement, Row, Width};
use std::borrow::Cow;
use std::fmt;

/// One cell: text shown whole, or free text that may be shortened.
#[derive(Clone, Debug)]
pub struct Cell {
    text: String,
    free: bool,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell { text, free: false }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::from(text.to_string())
    }
}

/// A cell of free text (an error message, a payload): shortened with `…` on a terminal too
/// narrow for the table.
pub fn free(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        free: true,
    }
}

/// A table with a header row (see the module documentation).
#[derive(Clone, Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

/// A table with a header row.
pub fn table(header: &[&str]) -> Table {
    Table {
        header: header.iter().map(|h| h.to_string()).collect(),
        rows: Vec::new(),
    }
}

impl Table {
    /// Add a row; control characters in its cells are escaped ([`escape`]).
    pub fn add_row<C: Into<Cell>>(&mut self, cells: Vec<C>) -> &mut Self {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| {
                    let c = c.into();
                    Cell {
                        text: escape(&c.text).into_owned(),
                        free: c.free,
                    }
                })
                .collect(),
        );
        self
    }

    /// The comfy table, fitted to `width` columns when given, else not wrapped at all.
    fn render(&self, width: Option<u16>) -> comfy_table::Table {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        // The widths of what must stay whole: the header and every cell not marked free.
        let mut whole = comfy_table::Table::new();
        whole.set_header(self.header.iter().map(|h| escape(h).into_owned()));
        for row in &self.rows {
            whole.add_row(
                row.iter()
                    .map(|c| if c.free { "" } else { c.text.as_str() }),
            );
        }
        let min = whole.column_max_content_widths();
        let mut has_free = vec![false; columns];
        for row in &self.rows {
            for (i, c) in row.iter().enumerate() {
                has_free[i] |= c.free;
            }
        }

        let mut t = comfy_table::Table::new();
        t.load_preset(UTF8_BORDERS_ONLY)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_truncation_indicator("…");
        match width {
            Some(w) => t.set_width(w),
            None => t.force_no_tty(),
        };
        let mut header = Row::from(self.header.iter().map(|h| escape(h).into_owned()));
        header.max_height(1);
        t.set_header(header);
        for row in &self.rows {
            let mut r = Row::from(row.iter().map(|c| c.text.as_str()));
            if row.iter().any(|c| c.free) {
                r.max_height(1);
            }
            t.add_row(r);
        }
        for (i, free) in has_free.into_iter().enumerate() {
            if let Some(column) = t.column_mut(i) {
                // A lower boundary counts the padding (one space each side) too.
                let whole = min.get(i).copied().unwrap_or(1);
                column.set_constraint(if free {
                    ColumnConstraint::LowerBoundary(Width::Fixed(whole.saturating_add(2)))
                } else {
                    ColumnConstraint::ContentWidth
                });
            }
        }
        t
    }
}

impl fmt::Display for Table {
    /// Fitted to the terminal when standard output is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // comfy-table asks the terminal only when standard output is one.
        let width = comfy_table::Table::new().width();
        write!(f, "{}", self.render(width))
    }
}

/// Text for a human (tables, messages) with its control characters made visible, so a value
/// stored in Redis cannot clear the screen, move the cursor or forge a line: `\n`, `\r`, `\t`
/// and `\u{XX}` for the others (C0, DEL, C1, and the bidirectional overrides). JSON output
/// never goes through this.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 10.8
    #[test]
    fn control_characters_are_made_visible() {
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
        assert_eq!(
            escape("a\x1b[2Jb\r\nc\td\x7f\u{9b}\u{202e}"),
            "a\\u{1b}[2Jb\\r\\nc\\td\\u{7f}\\u{9b}\\u{202e}"
        );
        let mut t = table(&["id", "error"]);
        t.add_row(vec![Cell::from("x\x07"), free("boom\x1b[H\nforged")]);
        let text = t.render(None).to_string();
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(text.contains("boom\\u{1b}[H\\nforged"), "{text}");
        assert_eq!(
            text.lines().count(),
            5,
            "borders, header, separator, one row"
        );
    }

    // issue 10.6
    #[test]
    fn nothing_is_wrapped_without_a_terminal() {
        let mut t = table(&["id", "count", "last error"]);
        let error = "word ".repeat(60);
        t.add_row(vec![
            Cell::from("0193b0a4-5c2e-7d41-8f0a-2b6f9e1c3d47"),
            Cell::from("25000"),
            free(error.trim()),
        ]);
        let text = t.render(None).to_string();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(text.contains(error.trim()), "{text}");

        let fitted = t.render(Some(80)).to_string();
        assert_eq!(fitted.lines().count(), 5, "{fitted}");
        for line in fitted.lines() {
            assert!(line.chars().count() <= 80, "{fitted}");
        }
        assert!(
            fitted.contains("0193b0a4-5c2e-7d41-8f0a-2b6f9e1c3d47"),
            "{fitted}"
        );
        assert!(fitted.contains(" 25000 "), "{fitted}");
        assert!(fitted.contains("word wor…"), "{fitted}");
    }
}
