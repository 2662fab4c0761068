//! Charts checked structurally: well-formed XML, coordinates for known inputs, gaps, escaping.

use time::macros::date;

use super::*;

/// One element of the markup: its name, attributes and the text directly inside it.
#[derive(Debug, Clone)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> &str {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} on {self:?}"))
    }

    fn num(&self, name: &str) -> f64 {
        self.attr(name).parse().unwrap()
    }
}

/// Decodes the five predefined entities and numeric references; panics on a bare `&`.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').expect("an entity ends with ;") + i;
        let entity = &rest[i + 1..end];
        out.push(match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            n if n.starts_with('#') => char::from_u32(n[1..].parse().unwrap()).unwrap(),
            other => panic!("unknown entity &{other};"),
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A small XML well-formedness check: tags balance and nest, one root `<svg>`, attributes are quoted
/// and unique, text and values hold no `<` and only known entities. Returns the elements in order.
fn parse(svg: &str) -> Vec<Element> {
    let mut elements: Vec<Element> = Vec::new();
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut rest = svg;
    let mut roots = 0;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            panic!("text after the root: {rest:?}");
        };
        let text = &rest[..lt];
        assert!(!text.contains('>'), "stray > in text {text:?}");
        if !text.is_empty() {
            let (_, index) = stack.last().expect("text outside the root");
            elements[*index].text.push_str(&unescape(text));
        }
        let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
        let tag = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let (open, _) = stack.pop().expect("close without open");
            assert_eq!(open, name, "mismatched close");
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, mut attrs_text) = tag.split_once(' ').unwrap_or((tag, ""));
        assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let mut attrs = Vec::new();
        loop {
            attrs_text = attrs_text.trim_start();
            if attrs_text.is_empty() {
                break;
            }
            let (key, after) = attrs_text.split_once("=\"").expect("attribute without =\"");
            assert!(
                key.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
            );
            let (value, after) = after.split_once('"').expect("unterminated value");
            assert!(!value.contains('<'), "< in attribute {key}");
            assert!(!attrs.iter().any(|(k, _)| k == key), "duplicate attribute {key}");
            attrs.push((key.to_owned(), unescape(value)));
            attrs_text = after;
        }
        if stack.is_empty() {
            roots += 1;
            assert_eq!(name, "svg", "the root is <svg>");
        }
        elements.push(Element {
            name: name.to_owned(),
            attrs,
            text: String::new(),
        });
        if !self_closing {
            stack.push((name.to_owned(), elements.len() - 1));
        }
    }
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    assert_eq!(roots, 1, "one root");
    elements
}

fn all<'a>(elements: &'a [Element], name: &str) -> Vec<&'a Element> {
    elements.iter().filter(|e| e.name == name).collect()
}

fn with_class<'a>(elements: &'a [Element], name: &str, class: &str) -> Vec<&'a Element> {
    all(elements, name)
        .into_iter()
        .filter(|e| e.attrs.iter().any(|(k, v)| k == "class" && v == class))
        .collect()
}

fn polyline_points(e: &Element) -> Vec<(f64, f64)> {
    e.attr("points")
        .split(' ')
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.051
}

#[test]
fn sparkline_scales_points_to_the_fixed_range() {
    let from = date!(2026 - 01 - 01);
    let to = date!(2026 - 01 - 31);
    let points = [(from, 0.0), (date!(2026 - 01 - 16), 50.0), (to, 100.0)];
    // Three days with gaps between: three dots, no line.
    let svg = sparkline(&points, from, to, "ORG-1 risk");
    let el = parse(&svg);
    assert_eq!(el[0].attr("viewBox"), "0 0 120 28");
    assert_eq!(el[0].attr("role"), "img");
    assert!(all(&el, "polyline").is_empty());
    let dots = with_class(&el, "circle", "point");
    let coords: Vec<(f64, f64)> = dots.iter().map(|c| (c.num("cx"), c.num("cy"))).collect();
    // x from 2 to 118 over 30 days; y: 0 at the bottom (26), 100 at the top (2).
    assert_eq!(coords.len(), 3);
    assert!(close(coords[0].0, 2.0) && close(coords[0].1, 26.0), "{coords:?}");
    assert!(close(coords[1].0, 60.0) && close(coords[1].1, 14.0), "{coords:?}");
    assert!(close(coords[2].0, 118.0) && close(coords[2].1, 2.0), "{coords:?}");
    let last = with_class(&el, "circle", "last");
    assert_eq!(last.len(), 1);
    assert!(close(last[0].num("cx"), 118.0) && close(last[0].num("cy"), 2.0));
    let title = &all(&el, "title")[0].text;
    assert!(title.starts_with("ORG-1 risk"), "{title}");
    assert!(title.contains("last 100 on 2026-01-31"), "{title}");
    assert_eq!(el[0].attr("aria-label"), title);
}

#[test]
fn consecutive_days_join_and_missing_days_break_the_line() {
    let from = date!(2026 - 03 - 01);
    let to = date!(2026 - 03 - 11);
    let day = |n: i64| from + time::Duration::days(n);
    let points = [
        (day(0), 10.0),
        (day(1), 20.0),
        (day(2), 30.0),
        // day 3 and 4 missing: a gap
        (day(5), 40.0),
        (day(6), 50.0),
        // day 7 missing; day 8 alone: a dot
        (day(8), 60.0),
    ];
    let el = parse(&sparkline(&points, from, to, "s"));
    let lines = all(&el, "polyline");
    assert_eq!(lines.len(), 2);
    assert_eq!(polyline_points(lines[0]).len(), 3);
    assert_eq!(polyline_points(lines[1]).len(), 2);
    assert_eq!(with_class(&el, "circle", "point").len(), 1);
    // x step: 116 px over 10 days.
    let first = polyline_points(lines[0]);
    assert!(close(first[1].0 - first[0].0, 11.6), "{first:?}");
    // Unsorted input and a repeated day: sorted, the last value given wins.
    let shuffled = [(day(2), 30.0), (day(0), 10.0), (day(1), 99.0), (day(1), 20.0)];
    let el2 = parse(&sparkline(&shuffled, from, to, "s"));
    assert_eq!(polyline_points(all(&el2, "polyline")[0]), first);
}

#[test]
fn empty_and_out_of_range_series_are_drawn_as_empty() {
    let from = date!(2026 - 01 - 01);
    let to = date!(2026 - 01 - 30);
    for points in [
        vec![],
        vec![(date!(2025 - 12 - 31), 50.0), (date!(2026 - 02 - 01), 50.0)],
        vec![(from, f64::NAN)],
    ] {
        let el = parse(&sparkline(&points, from, to, "nothing"));
        assert!(all(&el, "polyline").is_empty() && all(&el, "circle").is_empty());
        assert_eq!(with_class(&el, "line", "empty").len(), 1);
        assert!(all(&el, "title")[0].text.ends_with("no data"));

        let el = parse(&trend_chart(&points, from, to, "nothing"));
        assert!(all(&el, "polyline").is_empty() && all(&el, "circle").is_empty());
        let empty = with_class(&el, "text", "empty");
        assert_eq!(empty[0].text, "No score data for this period");
        // The axes are still there.
        assert_eq!(with_class(&el, "line", "grid").len(), 3);
    }
}

#[test]
fn trend_chart_has_axes_gridlines_and_the_last_value() {
    let from = date!(2026 - 01 - 01);
    let to = date!(2026 - 01 - 30);
    let points: Vec<(Date, f64)> = (0..30)
        .filter(|d| *d != 10)
        .map(|d| (from + time::Duration::days(d), f64::from(d as u32) * 2.0 + 12.4))
        .collect();
    let svg = trend_chart(&points, from, to, "Acme risk score");
    let el = parse(&svg);
    assert_eq!(el[0].attr("viewBox"), "0 0 640 220");
    // Plot area: x 34..596, y 10..194.
    let grid: Vec<f64> = with_class(&el, "line", "grid")
        .iter()
        .map(|l| l.num("y1"))
        .collect();
    assert_eq!(grid.len(), 3);
    for (y, value) in grid.iter().zip([25.0, 50.0, 75.0]) {
        assert!(
            close(*y, 10.0 + (100.0 - value) / 100.0 * 184.0),
            "{y} for {value}"
        );
    }
    let axes: Vec<f64> = with_class(&el, "line", "axis")
        .iter()
        .map(|l| l.num("y1"))
        .collect();
    assert_eq!(axes, vec![194.0, 10.0]);
    let y_labels: Vec<String> = el
        .iter()
        .filter(|e| e.name == "text" && e.attrs.iter().any(|(k, v)| k == "text-anchor" && v == "end"))
        .map(|e| e.text.clone())
        .collect();
    assert_eq!(y_labels, ["0", "25", "50", "75", "100"]);

    // The gap at day 10 splits the line in two.
    let lines = all(&el, "polyline");
    assert_eq!(lines.len(), 2);
    let first = polyline_points(lines[0]);
    assert_eq!(first.len(), 10);
    assert!(close(first[0].0, 34.0) && close(first[0].1, 10.0 + (100.0 - 12.4) / 100.0 * 184.0));
    let second = polyline_points(lines[1]);
    let (x_last, y_last) = *second.last().unwrap();
    assert!(close(x_last, 596.0), "{x_last}");
    // The last value, 70.4, is labelled as 70 beside its point.
    let label = &with_class(&el, "text", "last-value")[0];
    assert_eq!(label.text, "70");
    assert!(close(label.num("x"), x_last + 6.0) && close(label.num("y"), y_last + 4.0));

    // 30 days: weekly labels, on Mondays (2026-01-05 is one), at most eight.
    let ticks = with_class(&el, "line", "tick");
    let dates: Vec<String> = el
        .iter()
        .filter(|e| e.name == "text" && e.attrs.iter().any(|(k, v)| k == "text-anchor" && v == "middle"))
        .map(|e| e.text.clone())
        .collect();
    assert_eq!(dates, ["Jan 5", "Jan 12", "Jan 19", "Jan 26"]);
    assert_eq!(ticks.len(), 4);
    assert!(close(ticks[0].num("x1"), 34.0 + 4.0 / 29.0 * 562.0));
    assert!(
        all(&el, "title")[0]
            .text
            .contains("29 of 30 days with data, last 70 on 2026-01-30")
    );
}

#[test]
fn x_labels_suit_the_period() {
    let texts =
        |from: Date, to: Date| -> Vec<String> { x_labels(from, to).into_iter().map(|(_, t)| t).collect() };
    assert_eq!(
        texts(date!(2026 - 02 - 27), date!(2026 - 03 - 02)),
        ["Feb 27", "Feb 28", "Mar 1", "Mar 2"]
    );
    assert_eq!(texts(date!(2026 - 01 - 01), date!(2026 - 01 - 01)), ["Jan 1"]);
    let two_weeks = texts(date!(2026 - 01 - 01), date!(2026 - 01 - 14));
    assert_eq!(two_weeks.len(), 7, "{two_weeks:?}");
    let quarter = x_labels(date!(2026 - 01 - 01), date!(2026 - 03 - 31));
    assert!(quarter.len() <= 8 && quarter.iter().all(|(d, _)| d.weekday() == Weekday::Monday));
    // A year: every other month, on months aligned to January whatever the first day.
    assert_eq!(
        texts(date!(2025 - 01 - 15), date!(2026 - 01 - 14)),
        [
            "Mar 2025", "May 2025", "Jul 2025", "Sep 2025", "Nov 2025", "Jan 2026"
        ]
    );
    assert_eq!(
        texts(date!(2025 - 10 - 01), date!(2026 - 03 - 31)),
        [
            "Oct 2025", "Nov 2025", "Dec 2025", "Jan 2026", "Feb 2026", "Mar 2026"
        ]
    );
    for (from, to) in [
        (date!(2020 - 01 - 01), date!(2026 - 01 - 01)),
        (date!(2026 - 01 - 01), date!(2026 - 12 - 31)),
    ] {
        let labels = x_labels(from, to);
        assert!(!labels.is_empty() && labels.len() <= 8, "{labels:?}");
        assert!(labels.iter().all(|(d, _)| *d >= from && *d <= to));
    }
}

#[test]
fn values_are_clamped_and_text_is_escaped() {
    let from = date!(2026 - 01 - 01);
    let to = date!(2026 - 01 - 02);
    let points = [(from, -20.0), (to, 150.0)];
    let label = "<script>alert(\"x\")</script> & 'co'\u{7}";
    for svg in [
        sparkline(&points, from, to, label),
        trend_chart(&points, from, to, label),
    ] {
        assert!(!svg.contains("<script"), "{svg}");
        let el = parse(&svg);
        let title = &all(&el, "title")[0].text;
        assert!(
            title.starts_with("<script>alert(\"x\")</script> & 'co',"),
            "{title}"
        );
        let line = polyline_points(all(&el, "polyline")[0]);
        // -20 drawn as 0 (bottom), 150 as 100 (top).
        assert!(line[0].1 > line[1].1);
    }
    let el = parse(&trend_chart(&points, from, to, label));
    let line = polyline_points(all(&el, "polyline")[0]);
    assert!(close(line[0].1, 194.0) && close(line[1].1, 10.0), "{line:?}");
    assert_eq!(with_class(&el, "text", "last-value")[0].text, "150");
    assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

#[test]
fn store_history_rows_become_points() {
    let rows = vec![
        ("2026-01-01".to_owned(), 10.0),
        ("not a day".to_owned(), 20.0),
        ("2026-01-03".to_owned(), 30.5),
    ];
    assert_eq!(
        daily_points(&rows),
        vec![(date!(2026 - 01 - 01), 10.0), (date!(2026 - 01 - 03), 30.5)]
    );
}
