//! The frame of every signed-in page (`templates/layout.html`): navigation, who is signed in with a
//! sign-out form, and the "data as of" line. A page's template struct carries a [`Layout`] named
//! `layout` and extends `layout.html`.

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::http::auth::Principal;

/// The navigation's sections; the current one is marked `aria-current="page"`.
pub const SECTIONS: [(&str, &str, &str); 2] = [
    ("queue", "/queue", "Queue"),
    ("customers", "/customers", "Customers"),
];

#[derive(Debug, Clone)]
pub struct Layout {
    pub name: String,
    pub login: String,
    pub role: &'static str,
    /// The session's CSRF token, for the sign-out form and the page's own forms (empty for API tokens,
    /// which need none).
    pub csrf: String,
    /// Which of [`SECTIONS`] this page belongs to.
    pub section: &'static str,
    /// The freshest data the page shows, as stored (RFC 3339 UTC), and as people read it.
    pub data_as_of: Option<Stamp>,
}

impl Layout {
    pub fn new(principal: &Principal, section: &'static str, data_as_of: Option<&str>) -> Layout {
        Layout {
            name: principal.name.clone(),
            login: principal.login.clone(),
            role: principal.role.as_str(),
            csrf: principal.csrf_token().unwrap_or_default().to_owned(),
            section,
            data_as_of: data_as_of.map(Stamp::new),
        }
    }

    pub fn sections(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &SECTIONS
    }
}

/// A stored time: machine-readable for `<time datetime>`, and as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub iso: String,
    pub text: String,
}

impl Stamp {
    pub fn new(stored: &str) -> Stamp {
        match OffsetDateTime::parse(stored, &Rfc3339) {
            Ok(t) => Stamp {
                iso: stored.to_owned(),
                text: utc_text(t),
            },
            // Shown as stored rather than hidden: a time we cannot read is still information.
            Err(_) => Stamp {
                iso: stored.to_owned(),
                text: stored.to_owned(),
            },
        }
    }
}

/// `2026-01-02 03:04 UTC`.
pub fn utc_text(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// A duration in whole minutes, as people say it: `45 min`, `3 h 05 min`, `2 d 4 h`.
pub fn minutes_text(d: Duration) -> String {
    let minutes = d.whole_minutes().abs();
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    if days > 0 {
        format!("{days} d {hours} h")
    } else if hours > 0 {
        format!("{hours} h {mins:02} min")
    } else {
        format!("{mins} min")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_and_durations_in_minutes() {
        let s = Stamp::new("2026-01-02T03:04:05.123456Z");
        assert_eq!(s.text, "2026-01-02 03:04 UTC");
        assert_eq!(s.iso, "2026-01-02T03:04:05.123456Z");
        assert_eq!(Stamp::new("garbage").text, "garbage");
        assert_eq!(minutes_text(Duration::seconds(59)), "0 min");
        assert_eq!(minutes_text(Duration::minutes(45)), "45 min");
        assert_eq!(minutes_text(Duration::minutes(-185)), "3 h 05 min");
        assert_eq!(minutes_text(Duration::minutes(2 * 1440 + 4 * 60 + 7)), "2 d 4 h");
    }
}
