//! HTML building blocks of the merchant pages: escaping, URL encoding, the page layout
//! (navigation, embedded stylesheet) and number formatting.

use std::fmt::Write;

/// The stylesheet, embedded in the binary.
pub const STYLE: &str = include_str!("assets/style.css");
/// The "try a shopper" script, embedded in the binary.
pub const SCRIPT: &str = include_str!("assets/app.js");

/// Escape `s` for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode `s` for a URL path segment or query value (everything but the
/// unreserved characters `A-Z a-z 0-9 - . _ ~`).
pub fn url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A signed number of sizes, e.g. `+0.52`.
pub fn signed(x: f64) -> String {
    if x.is_finite() {
        format!("{x:+.2}")
    } else {
        "–".into()
    }
}

/// A probability as a percentage, e.g. `72%` (`–` when not a number).
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.0}%", 100.0 * x)
    } else {
        "–".into()
    }
}

/// Which navigation entry is current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    /// Brand ranking and brand pages.
    Brands,
    /// Model page.
    Model,
    /// Try-a-shopper page.
    Try,
}

/// How a page is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Served by `runsize serve`: linked stylesheet and script, navigation links.
    Live,
    /// One self-contained file (`runsize report`): inline stylesheet, no script, no navigation.
    Report,
}

/// A complete HTML page: `title`, current `nav` entry, `body` HTML.
pub fn page(title: &str, nav: Nav, body: &str, delivery: Delivery) -> String {
    let mut out = String::with_capacity(body.len() + STYLE.len() + 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>{} · runsize</title>", esc(title));
    match delivery {
        Delivery::Live => {
            out.push_str("<link rel=\"icon\" href=\"data:,\">\n");
            out.push_str("<link rel=\"stylesheet\" href=\"/assets/style.css\">\n");
        }
        Delivery::Report => {
            let _ = writeln!(out, "<style>\n{STYLE}</style>");
        }
    }
    out.push_str("</head>\n<body>\n<a class=\"skip\" href=\"#main\">Skip to content</a>\n");
    if delivery == Delivery::Live {
        out.push_str("<header><nav aria-label=\"Main\"><span class=\"brand\">runsize</span><ul>");
        for (entry, href, text) in [
            (Nav::Brands, "/", "Brands"),
            (Nav::Model, "/model", "Model"),
            (Nav::Try, "/try", "Try a shopper"),
        ] {
            let current = if entry == nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(out, "<li><a href=\"{href}\"{current}>{text}</a></li>");
        }
        out.push_str("</ul></nav></header>\n");
    }
    out.push_str("<main id=\"main\">\n");
    out.push_str(body);
    out.push_str("\n</main>\n");
    if delivery == Delivery::Live && nav == Nav::Try {
        out.push_str("<script src=\"/assets/app.js\"></script>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_encoding() {
        assert_eq!(
            esc("<a href=\"x\">Tom & 'Jerry'</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(url("Acme & Co/1"), "Acme%20%26%20Co%2F1");
        assert_eq!(url("é"), "%C3%A9");
        assert_eq!(signed(0.5), "+0.50");
        assert_eq!(pct(0.724), "72%");
        assert_eq!(pct(f64::NAN), "–");
    }

    #[test]
    fn layouts() {
        let live = page("T<", Nav::Try, "<p>x</p>", Delivery::Live);
        assert!(live.contains("<title>T&lt; · runsize</title>"));
        assert!(live.contains("href=\"/try\" aria-current=\"page\""));
        assert!(live.contains("/assets/app.js"));
        let report = page("T", Nav::Brands, "<p>x</p>", Delivery::Report);
        assert!(
            report.contains("<style>") && !report.contains("<script") && !report.contains("<nav")
        );
    }
}
