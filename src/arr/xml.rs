//! XML text for the *arr plane's documents (Torznab capabilities, feeds,
//! errors): escaping and a small writer that indents one element a line.
//!
//! Every text and attribute value goes through [`escape`]: `&`, `<`, `>`,
//! `"` and `'` become entities; tab, newline and CR become character
//! references (so attribute normalization cannot turn them into spaces);
//! characters XML 1.0 forbids, and the C1 controls it discourages, are
//! dropped (titles and ids come from peers and are hostile). Element and
//! attribute names are the caller's constants, never data. Pure: must not
//! do I/O.

/// Whether `c` may appear in jack's XML: XML 1.0 `Char` (a Rust `char` is
/// never a surrogate) less the controls other than tab, newline and CR
/// (C0, DEL and C1).
pub fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || !(c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}')
}

/// Appends `text` to `out`, escaped for an element's text or an attribute
/// value in double or single quotes.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if allowed(c) => out.push(c),
            _ => {}
        }
    }
}

/// `text` escaped (see [`escape_into`]).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// Writes one UTF-8 XML document, an element a line, indented by depth.
#[derive(Debug)]
pub struct Writer {
    out: String,
    open: Vec<&'static str>,
}

impl Default for Writer {
    fn default() -> Writer {
        Writer::new()
    }
}

impl Writer {
    /// A document starting with its XML declaration.
    pub fn new() -> Writer {
        Writer {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
            open: Vec::new(),
        }
    }

    fn start_tag(&mut self, name: &'static str, attrs: &[(&str, &str)]) {
        for _ in 0..self.open.len() {
            self.out.push_str("  ");
        }
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            escape_into(&mut self.out, value);
            self.out.push('"');
        }
    }

    /// `<name attrs>`; the element stays open until [`Writer::close`].
    pub fn open(&mut self, name: &'static str, attrs: &[(&str, &str)]) -> &mut Writer {
        self.start_tag(name, attrs);
        self.out.push_str(">\n");
        self.open.push(name);
        self
    }

    /// Closes the element opened last.
    pub fn close(&mut self) -> &mut Writer {
        if let Some(name) = self.open.pop() {
            for _ in 0..self.open.len() {
                self.out.push_str("  ");
            }
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push_str(">\n");
        }
        self
    }

    /// `<name attrs/>`.
    pub fn empty(&mut self, name: &'static str, attrs: &[(&str, &str)]) -> &mut Writer {
        self.start_tag(name, attrs);
        self.out.push_str("/>\n");
        self
    }

    /// `<name attrs>text</name>`.
    pub fn text(&mut self, name: &'static str, attrs: &[(&str, &str)], text: &str) -> &mut Writer {
        self.start_tag(name, attrs);
        self.out.push('>');
        escape_into(&mut self.out, text);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
        self
    }

    /// The document, every element still open closed.
    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.close();
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_what_xml_forbids() {
        let cases = [
            ("plain title", "plain title"),
            ("Tom & Jerry", "Tom &amp; Jerry"),
            ("<script>", "&lt;script&gt;"),
            ("say \"hi\" it's", "say &quot;hi&quot; it&apos;s"),
            ("a\u{1}b\u{0}c\u{1b}d\u{7f}e\u{85}f\u{9f}g", "abcdefg"),
            ("tab\tnl\ncr\r", "tab&#9;nl&#10;cr&#13;"),
            ("\u{FFFE}\u{FFFF}x\u{FFFD}", "x\u{FFFD}"),
            ("Amélie 日本 🎬", "Amélie 日本 🎬"),
            ("&amp;", "&amp;amp;"),
            ("]]>", "]]&gt;"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(escape(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn allowed_chars_follow_xml_1_0() {
        for c in [
            '\t', '\n', '\r', ' ', '~', '\u{a0}', '\u{D7FF}', '\u{E000}', '\u{FFFD}',
        ] {
            assert!(allowed(c), "{c:?}");
        }
        assert!(allowed('\u{10000}') && allowed('\u{10FFFF}'));
        for c in [
            '\0', '\u{1}', '\u{8}', '\u{b}', '\u{c}', '\u{1f}', '\u{7f}', '\u{80}',
        ] {
            assert!(!allowed(c), "{c:?}");
        }
        assert!(!allowed('\u{FFFE}') && !allowed('\u{FFFF}'));
    }

    #[test]
    fn writes_nested_elements() {
        let mut w = Writer::new();
        w.open("a", &[("x", "1 & 2")])
            .text("b", &[], "<hi>")
            .empty("c", &[("k", "'q'"), ("v", "\u{1}")])
            .open("d", &[]);
        assert_eq!(
            w.finish(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <a x=\"1 &amp; 2\">\n  <b>&lt;hi&gt;</b>\n  <c k=\"&apos;q&apos;\" v=\"\"/>\n  <d>\n  </d>\n</a>\n"
        );
    }
}
