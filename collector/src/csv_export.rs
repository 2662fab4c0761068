//! CSV for spreadsheets (RFC 4180): a header row, CRLF line ends, fields quoted when they hold a
//! comma, a quote or a line break (quotes doubled).
//!
//! Text that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, or a tab or
//! carriage return that some strip first) is prefixed with `'`, as OWASP's "CSV Injection" advice
//! says: a finding's evidence or a host name comes from a customer's machine and must never execute
//! in a TAM's spreadsheet. Numbers the collector itself formats are written as they are.

/// One cell: text from the data (guarded), or a number the collector formatted.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Text(String),
    Number(f64),
    Integer(i64),
    Empty,
}

impl From<&str> for Field {
    fn from(s: &str) -> Field {
        Field::Text(s.to_owned())
    }
}

impl From<String> for Field {
    fn from(s: String) -> Field {
        Field::Text(s)
    }
}

impl From<Option<String>> for Field {
    fn from(s: Option<String>) -> Field {
        s.map_or(Field::Empty, Field::Text)
    }
}

impl From<Option<f64>> for Field {
    fn from(v: Option<f64>) -> Field {
        v.map_or(Field::Empty, Field::Number)
    }
}

impl From<i64> for Field {
    fn from(v: i64) -> Field {
        Field::Integer(v)
    }
}

/// A CSV document under construction.
#[derive(Debug, Default)]
pub struct Csv {
    out: String,
}

impl Csv {
    pub fn with_header(header: &[&str]) -> Csv {
        let mut csv = Csv::default();
        csv.row(header.iter().map(|h| Field::Text((*h).to_owned())));
        csv
    }

    pub fn row(&mut self, fields: impl IntoIterator<Item = Field>) {
        for (i, f) in fields.into_iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            match f {
                Field::Text(s) => push_text(&mut self.out, &s),
                Field::Number(v) if v.is_finite() => self.out.push_str(&format!("{v}")),
                Field::Number(_) | Field::Empty => {}
                Field::Integer(v) => self.out.push_str(&v.to_string()),
            }
        }
        self.out.push_str("\r\n");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn push_text(out: &mut String, s: &str) {
    let guarded = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = s.contains(['"', ',', '\n', '\r'])
        // Leading or trailing spaces survive a spreadsheet only when quoted.
        || s.starts_with(' ')
        || s.ends_with(' ');
    if quoted {
        out.push('"');
    }
    if guarded {
        out.push('\'');
    }
    for c in s.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quoted {
        out.push('"');
    }
}

/// Parses CSV as RFC 4180 writes it (tests and round-trip checks).
pub fn parse(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            _ => field.push(c),
        }
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_rfc_4180_says_and_nothing_else() {
        let mut csv = Csv::with_header(&["a", "b", "c", "d"]);
        csv.row([
            Field::from("plain"),
            Field::from("with, comma"),
            Field::from("say \"hi\""),
            Field::from("two\nlines"),
        ]);
        let text = csv.finish();
        assert_eq!(
            text,
            "a,b,c,d\r\nplain,\"with, comma\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n"
        );
        assert_eq!(
            parse(&text),
            vec![
                vec!["a", "b", "c", "d"],
                vec!["plain", "with, comma", "say \"hi\"", "two\nlines"]
            ]
        );
    }

    #[test]
    fn formulas_are_defused() {
        let mut csv = Csv::default();
        csv.row([
            Field::from("=HYPERLINK(\"http://x\",\"y\")"),
            Field::from("+1"),
            Field::from("-2"),
            Field::from("@SUM(A1)"),
            Field::from("\tx"),
            Field::from("a=b"),
        ]);
        let rows = parse(&csv.finish());
        assert_eq!(
            rows[0],
            vec![
                "'=HYPERLINK(\"http://x\",\"y\")",
                "'+1",
                "'-2",
                "'@SUM(A1)",
                "'\tx",
                "a=b"
            ]
        );
    }

    #[test]
    fn numbers_and_empty_cells() {
        let mut csv = Csv::default();
        csv.row([
            Field::Number(-3.5),
            Field::Integer(-7),
            Field::Empty,
            Field::from(None::<f64>),
            Field::Number(f64::NAN),
        ]);
        assert_eq!(csv.finish(), "-3.5,-7,,,\r\n");
    }

    #[test]
    fn spaces_at_the_edges_are_kept_by_quoting() {
        let mut csv = Csv::default();
        csv.row([Field::from(" padded "), Field::from("")]);
        let text = csv.finish();
        assert_eq!(text, "\" padded \",\r\n");
        assert_eq!(parse(&text), vec![vec![" padded ", ""]]);
    }
}
