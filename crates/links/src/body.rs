//! Looking for the backlink in a page while it streams: bytes are decoded as they come
//! (charset from `Content-Type`, else a `<meta charset>` in the first bytes, else a BOM, else
//! UTF-8; invalid sequences become U+FFFD, so a GBK or broken page still works), the search
//! runs over a sliding window, and reading stops at the first match. Memory per page is one
//! chunk plus the window, whatever the page size.

use encoding_rs::{Decoder, Encoding, UTF_8};
use regex::Regex;

/// Text kept from earlier chunks for a regular expression (a regex match must fit in it).
const REGEX_WINDOW: usize = 64 * 1024;
/// Bytes looked at for a `<meta charset>`.
const SNIFF_BYTES: usize = 1024;

/// What the page must contain.
#[derive(Clone, Debug)]
pub enum Backlink {
    /// This text, literally.
    Literal(String),
    /// A match of this regular expression.
    Regex(Regex),
}

impl Backlink {
    /// How much decoded text to keep between chunks so that a match spanning two chunks is
    /// still found.
    fn window(&self) -> usize {
        match self {
            Backlink::Literal(s) => s.len(),
            Backlink::Regex(_) => REGEX_WINDOW,
        }
    }

    fn found_in(&self, text: &str) -> bool {
        match self {
            Backlink::Literal(s) => text.contains(s.as_str()),
            Backlink::Regex(r) => r.is_match(text),
        }
    }
}

/// An incremental search of one page.
pub struct Search<'a> {
    backlink: &'a Backlink,
    content_type: Option<String>,
    decoder: Option<Decoder>,
    window: String,
    /// Bytes held back until the encoding is known.
    head: Vec<u8>,
}

impl<'a> Search<'a> {
    /// A search for `backlink` in a page served with `content_type`.
    pub fn new(backlink: &'a Backlink, content_type: Option<&str>) -> Self {
        Search {
            backlink,
            content_type: content_type.map(str::to_string),
            decoder: None,
            window: String::new(),
            head: Vec::new(),
        }
    }

    /// Feed the next chunk; true once the backlink is found.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        if self.decoder.is_none() {
            self.head.extend_from_slice(chunk);
            let labelled = self
                .content_type
                .as_deref()
                .and_then(charset_param)
                .is_some();
            if self.head.len() < SNIFF_BYTES && !labelled {
                // The encoding is not known yet; an ASCII backlink can already be seen in the
                // raw bytes (a page that drips its first kilobyte still passes).
                return match self.backlink {
                    Backlink::Literal(s) if s.is_ascii() && !s.is_empty() => {
                        self.head.windows(s.len()).any(|w| w == s.as_bytes())
                    }
                    _ => false,
                };
            }
            let head = std::mem::take(&mut self.head);
            return self.start_and_feed(&head, false);
        }
        self.decode(chunk, false)
    }

    /// The page ended; true if the backlink is in it.
    pub fn finish(&mut self) -> bool {
        if self.decoder.is_none() {
            let head = std::mem::take(&mut self.head);
            return self.start_and_feed(&head, true);
        }
        self.decode(&[], true)
    }

    fn start_and_feed(&mut self, head: &[u8], last: bool) -> bool {
        let encoding = self
            .content_type
            .as_deref()
            .and_then(charset_param)
            .and_then(|l| Encoding::for_label(l.as_bytes()))
            .or_else(|| meta_charset(head))
            .unwrap_or(UTF_8);
        // new_decoder() sniffs and removes a BOM, which wins over the label.
        self.decoder = Some(encoding.new_decoder());
        self.decode(head, last)
    }

    fn decode(&mut self, bytes: &[u8], last: bool) -> bool {
        let Some(decoder) = self.decoder.as_mut() else {
            return false;
        };
        let start = self.window.len();
        let need = decoder
            .max_utf8_buffer_length(bytes.len())
            .unwrap_or(bytes.len() * 3 + 16);
        self.window.reserve(need);
        let (_, _, _) = decoder.decode_to_string(bytes, &mut self.window, last);
        if self.window.len() == start && !last {
            return false;
        }
        if self.backlink.found_in(&self.window) {
            return true;
        }
        // Keep only the tail a match could still start in.
        let keep = self.backlink.window();
        if self.window.len() > keep {
            let mut cut = self.window.len() - keep;
            while !self.window.is_char_boundary(cut) {
                cut -= 1;
            }
            self.window.drain(..cut);
        }
        false
    }
}

/// The `charset` parameter of a `Content-Type` value.
fn charset_param(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// A `charset=` in the first bytes of the page (`<meta charset="gbk">` or the http-equiv form).
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let head = &head[..head.len().min(SNIFF_BYTES)];
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    let at = lower.windows(8).position(|w| w == b"charset=")? + 8;
    let rest = &lower[at..];
    let rest = rest
        .strip_prefix(b"\"")
        .or_else(|| rest.strip_prefix(b"'"))
        .unwrap_or(rest);
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.')))
        .unwrap_or(rest.len());
    Encoding::for_label(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search_chunks(backlink: &Backlink, ct: Option<&str>, chunks: &[&[u8]]) -> bool {
        let mut s = Search::new(backlink, ct);
        for c in chunks {
            if s.feed(c) {
                return true;
            }
        }
        s.finish()
    }

    #[test]
    fn literal_match_across_chunk_boundaries() {
        let b = Backlink::Literal("https://celeriac.example".into());
        let page = format!(
            "{}<a href=\"https://celeriac.example/\">us</a>{}",
            "x".repeat(3000),
            "y".repeat(3000)
        );
        let bytes = page.as_bytes();
        for size in [1, 7, 100, 1024, 5000] {
            let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
            assert!(search_chunks(&b, None, &chunks), "chunk size {size}");
        }
        assert!(!search_chunks(&b, None, &[b"no link here"]));
    }

    #[test]
    fn gbk_pages_decode_from_header_or_meta() {
        let (gbk, _, _) =
            encoding_rs::GBK.encode("友情链接：<a href=\"https://celeriac.example\">芹菜</a>");
        let b = Backlink::Regex(Regex::new("芹菜").unwrap());
        assert!(search_chunks(&b, Some("text/html; charset=GBK"), &[&gbk]));
        let mut page = b"<html><head><meta charset=\"gbk\"></head><body>".to_vec();
        page.extend_from_slice(&gbk);
        assert!(search_chunks(&b, Some("text/html"), &[&page]));
        // Read as UTF-8 the Chinese text is not there, but the ASCII link still is.
        assert!(!search_chunks(
            &b,
            Some("text/html; charset=utf-8"),
            &[&gbk]
        ));
        let lit = Backlink::Literal("https://celeriac.example".into());
        assert!(search_chunks(
            &lit,
            Some("text/html; charset=utf-8"),
            &[&gbk]
        ));
    }

    #[test]
    fn a_short_head_is_searched_before_the_encoding_is_known() {
        let b = Backlink::Literal("https://celeriac.example".into());
        let mut s = Search::new(&b, Some("text/html"));
        assert!(!s.feed(b"<a href=\"https://celer"));
        assert!(
            s.feed(b"iac.example/\">us</a>"),
            "found in 40 bytes, before 1 KiB arrived"
        );
        let mut s = Search::new(&b, Some("text/html; charset=utf-8"));
        assert!(
            s.feed(b"<a href=\"https://celeriac.example/\">"),
            "labelled: decoded at once"
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let b = Backlink::Literal("celeriac.example".into());
        let page: &[u8] = b"\xfa\xff\xfe broken \xc3( bytes, then celeriac.example";
        assert!(search_chunks(&b, None, &[page]));
    }

    #[test]
    fn charset_parameters() {
        assert_eq!(
            charset_param("text/html; Charset=\"gb2312\""),
            Some("gb2312".into())
        );
        assert_eq!(charset_param("text/html"), None);
        assert_eq!(
            meta_charset(b"<meta http-equiv=Content-Type content='text/html; charset=gbk'>"),
            Some(encoding_rs::GBK)
        );
    }
}
