//! SVG charts drawn by the server: pure functions from a score series to SVG markup.
//!
//! The markup is generated here and nowhere else, so templates may embed it unescaped (`|safe`); every
//! piece of text that reaches it (labels, dates, values) goes through [`escape`]. Colours come from
//! classes styled by `console.css` (the CSP allows no inline style); presentation attributes only
//! keep an unstyled chart readable (lines not filled).
//!
//! Scores are risk scores, 0 (no risk) to 100, drawn on a fixed 0..100 scale so charts compare at a
//! glance. A series is one value per UTC day; days without a value are gaps: the line breaks there
//! rather than inventing a straight path across them.

use std::fmt::Write;

use time::{Date, Month, Weekday};

/// Where a day's value sits in a chart's plotting area.
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    from: Date,
    span_days: i64,
}

impl Frame {
    fn x(&self, date: Date) -> f64 {
        if self.span_days == 0 {
            return self.left + self.width / 2.0;
        }
        let days = (date - self.from).whole_days() as f64;
        self.left + days / self.span_days as f64 * self.width
    }

    fn y(&self, value: f64) -> f64 {
        self.top + (100.0 - value.clamp(0.0, 100.0)) / 100.0 * self.height
    }
}

/// The points inside `from..=to`, sorted by date, one per day (the last given wins), values that are
/// not numbers dropped.
fn clean(points: &[(Date, f64)], from: Date, to: Date) -> Vec<(Date, f64)> {
    let mut out: Vec<(Date, f64)> = points
        .iter()
        .copied()
        .filter(|(d, v)| *d >= from && *d <= to && v.is_finite())
        .collect();
    // A stable sort keeps the given order among equal dates, so `dedup` below keeps the last.
    out.sort_by_key(|(d, _)| *d);
    out.reverse();
    out.dedup_by_key(|(d, _)| *d);
    out.reverse();
    out
}

/// Runs of consecutive days: a missing day starts a new run (a gap in the line).
fn runs(points: &[(Date, f64)]) -> Vec<&[(Date, f64)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        let broken = i == points.len() || (points[i].0 - points[i - 1].0).whole_days() != 1;
        if broken {
            if start < i {
                out.push(&points[start..i]);
            }
            start = i;
        }
    }
    out
}

/// Polylines for runs of two or more days, dots for single days.
fn draw_series(svg: &mut String, frame: &Frame, points: &[(Date, f64)], dot_radius: f64) {
    for run in runs(points) {
        if let [(date, value)] = run {
            let _ = write!(
                svg,
                r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="{dot_radius}"/>"#,
                frame.x(*date),
                frame.y(*value)
            );
            continue;
        }
        let coords: Vec<String> = run
            .iter()
            .map(|(d, v)| format!("{:.1},{:.1}", frame.x(*d), frame.y(*v)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline class="line" fill="none" stroke="currentColor" points="{}"/>"#,
            coords.join(" ")
        );
    }
}

/// What a screen reader hears for a series: the label, the period and the last value.
fn describe(label: &str, points: &[(Date, f64)], from: Date, to: Date) -> String {
    match points.last() {
        Some((date, value)) => format!(
            "{label}, {from} to {to}: {n} of {days} days with data, last {value:.0} on {date}",
            n = points.len(),
            days = (to - from).whole_days() + 1,
        ),
        None => format!("{label}, {from} to {to}: no data"),
    }
}

/// Opening of an accessible chart: `role="img"`, the description as `aria-label` and `<title>`.
fn open_svg(svg: &mut String, class: &str, width: u32, height: u32, description: &str) {
    let description = escape(description);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="{class}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{description}"><title>{description}</title>"#
    );
}

const SPARK_WIDTH: u32 = 120;
const SPARK_HEIGHT: u32 = 28;
const SPARK_PAD: f64 = 2.0;

/// A small line of `points` between `from` and `to` (a customer's score over 30 days), on the fixed
/// 0..100 scale, with the last value dotted. `label` says what the series is, for screen readers.
pub fn sparkline(points: &[(Date, f64)], from: Date, to: Date, label: &str) -> String {
    let (from, to) = (from.min(to), from.max(to));
    let points = clean(points, from, to);
    let frame = Frame {
        left: SPARK_PAD,
        top: SPARK_PAD,
        width: f64::from(SPARK_WIDTH) - 2.0 * SPARK_PAD,
        height: f64::from(SPARK_HEIGHT) - 2.0 * SPARK_PAD,
        from,
        span_days: (to - from).whole_days(),
    };
    let mut svg = String::with_capacity(512);
    open_svg(
        &mut svg,
        "chart spark",
        SPARK_WIDTH,
        SPARK_HEIGHT,
        &describe(label, &points, from, to),
    );
    if points.is_empty() {
        // A flat dashed line reads as "nothing to show" at this size, where words would not fit.
        let y = frame.y(50.0);
        let _ = write!(
            svg,
            r#"<line class="empty" x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="currentColor" stroke-dasharray="2 3"/>"#,
            frame.left,
            frame.left + frame.width
        );
    } else {
        draw_series(&mut svg, &frame, &points, 1.5);
        if let Some((date, value)) = points.last() {
            let _ = write!(
                svg,
                r#"<circle class="last" cx="{:.1}" cy="{:.1}" r="2"/>"#,
                frame.x(*date),
                frame.y(*value)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

const TREND_WIDTH: u32 = 640;
const TREND_HEIGHT: u32 = 220;
const TREND_LEFT: f64 = 34.0;
const TREND_RIGHT: f64 = 44.0;
const TREND_TOP: f64 = 10.0;
const TREND_BOTTOM: f64 = 26.0;
/// More date labels than this crowd a 640-wide chart.
const MAX_X_LABELS: i64 = 8;

/// A score trend of `points` between `from` and `to`: y axis 0..100 with gridlines at 25, 50 and 75,
/// dates along the x axis at an interval that suits the period, the last value labelled, and gaps for
/// days without data.
pub fn trend_chart(points: &[(Date, f64)], from: Date, to: Date, label: &str) -> String {
    let (from, to) = (from.min(to), from.max(to));
    let points = clean(points, from, to);
    let frame = Frame {
        left: TREND_LEFT,
        top: TREND_TOP,
        width: f64::from(TREND_WIDTH) - TREND_LEFT - TREND_RIGHT,
        height: f64::from(TREND_HEIGHT) - TREND_TOP - TREND_BOTTOM,
        from,
        span_days: (to - from).whole_days(),
    };
    let right = frame.left + frame.width;
    let bottom = frame.top + frame.height;
    let mut svg = String::with_capacity(4096);
    open_svg(
        &mut svg,
        "chart trend",
        TREND_WIDTH,
        TREND_HEIGHT,
        &describe(label, &points, from, to),
    );

    svg.push_str(r#"<g class="y-axis">"#);
    for value in [0u32, 25, 50, 75, 100] {
        let y = frame.y(f64::from(value));
        let class = if value == 0 || value == 100 {
            "axis"
        } else {
            "grid"
        };
        let _ = write!(
            svg,
            r#"<line class="{class}" x1="{:.1}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="currentColor"/><text x="{:.1}" y="{:.1}" text-anchor="end">{value}</text>"#,
            frame.left,
            frame.left - 6.0,
            y + 4.0
        );
    }
    svg.push_str("</g>");

    svg.push_str(r#"<g class="x-axis">"#);
    for (date, text) in x_labels(from, to) {
        let x = frame.x(date);
        let _ = write!(
            svg,
            r#"<line class="tick" x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{:.1}" stroke="currentColor"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            bottom + 4.0,
            bottom + 17.0,
            escape(&text)
        );
    }
    svg.push_str("</g>");

    if points.is_empty() {
        let _ = write!(
            svg,
            r#"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle">No score data for this period</text>"#,
            frame.left + frame.width / 2.0,
            frame.top + frame.height / 2.0
        );
    } else {
        svg.push_str(r#"<g class="series">"#);
        draw_series(&mut svg, &frame, &points, 2.5);
        if let Some((date, value)) = points.last() {
            let (x, y) = (frame.x(*date), frame.y(*value));
            let _ = write!(
                svg,
                r#"<circle class="last" cx="{x:.1}" cy="{y:.1}" r="3.5"/><text class="last-value" x="{:.1}" y="{:.1}">{}</text>"#,
                x + 6.0,
                y + 4.0,
                escape(&format!("{value:.0}"))
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

/// The dates to label along the x axis of `from..=to`, at most [`MAX_X_LABELS`]: every day or every
/// few days for short periods, Mondays for a few weeks, first days of months beyond.
fn x_labels(from: Date, to: Date) -> Vec<(Date, String)> {
    let span = (to - from).whole_days();
    let day_label = |d: Date| format!("{} {}", month_abbr(d.month()), d.day());
    for step in [1i64, 2, 3] {
        if span / step < MAX_X_LABELS {
            return (0..=span / step)
                .filter_map(|i| from.checked_add(time::Duration::days(i * step)))
                .map(|d| (d, day_label(d)))
                .collect();
        }
    }
    for weeks in [1i64, 2] {
        if span / (7 * weeks) < MAX_X_LABELS {
            let first_monday = (0..7)
                .filter_map(|i| from.checked_add(time::Duration::days(i)))
                .find(|d| d.weekday() == Weekday::Monday)
                .unwrap_or(from);
            return std::iter::successors(Some(first_monday), |d| {
                d.checked_add(time::Duration::days(7 * weeks))
            })
            .take_while(|d| *d <= to)
            .map(|d| (d, day_label(d)))
            .collect();
        }
    }
    let months = i64::from(to.year() - from.year()) * 12 + i64::from(u8::from(to.month()))
        - i64::from(u8::from(from.month()));
    let step = [1i64, 2, 3, 6, 12, 24]
        .into_iter()
        .find(|step| months / step < MAX_X_LABELS)
        .unwrap_or(months / MAX_X_LABELS + 1);
    let mut out = Vec::new();
    let mut month_index = i64::from(from.year()) * 12 + i64::from(u8::from(from.month())) - 1;
    // The first first-of-month on or after `from`.
    if from.day() != 1 {
        month_index += 1;
    }
    // Align to the step so labels fall on the same months whatever `from` is (Jan, Apr, Jul, ...).
    month_index += (step - month_index.rem_euclid(step)) % step;
    while let Some(d) = first_of_month(month_index) {
        if d > to {
            break;
        }
        out.push((d, format!("{} {}", month_abbr(d.month()), d.year())));
        month_index += step;
    }
    out
}

fn first_of_month(month_index: i64) -> Option<Date> {
    let year = i32::try_from(month_index.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(month_index.rem_euclid(12) + 1).ok()?).ok()?;
    Date::from_calendar_date(year, month, 1).ok()
}

fn month_abbr(m: Month) -> &'static str {
    match m {
        Month::January => "Jan",
        Month::February => "Feb",
        Month::March => "Mar",
        Month::April => "Apr",
        Month::May => "May",
        Month::June => "Jun",
        Month::July => "Jul",
        Month::August => "Aug",
        Month::September => "Sep",
        Month::October => "Oct",
        Month::November => "Nov",
        Month::December => "Dec",
    }
}

/// Escapes text for SVG (XML) content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // XML 1.0 forbids most control characters even as references: drop them.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// Parses the store's `YYYY-MM-DD` score history into chart points, skipping malformed days.
pub fn daily_points(rows: &[(String, f64)]) -> Vec<(Date, f64)> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    rows.iter()
        .filter_map(|(day, score)| Date::parse(day, &format).ok().map(|d| (d, *score)))
        .collect()
}

#[cfg(test)]
mod tests;
