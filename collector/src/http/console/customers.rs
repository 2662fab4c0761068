//! The customers page: the orgs the user may see, ranked by risk, each with a 30-day sparkline,
//! its change over 7 and 30 days, open criticals and stale hosts. Select orgs are not scored (SPEC
//! §3) and say so.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use time::OffsetDateTime;

use super::charts::{daily_points, sparkline};
use super::html;
use super::layout::{Layout, Stamp};
use super::view::{Delta, score_text, tier_label};
use crate::http::auth::Principal;
use crate::http::{AppError, AppState};
use crate::store::accounts::Visibility;

pub const CUSTOMERS_PATH: &str = "/customers";
const SPARK_DAYS: i64 = 30;

#[derive(Template)]
#[template(path = "customers.html")]
struct CustomersPage {
    layout: Layout,
    rows: Vec<Row>,
    unassigned: bool,
}

struct Row {
    org: String,
    name: String,
    tier: &'static str,
    tams: String,
    scored: bool,
    score: String,
    /// SVG drawn by `charts::sparkline` (escaped there).
    spark: String,
    change_7d: Delta,
    change_30d: Delta,
    open_criticals: i64,
    stale_hosts: i64,
    hosts: i64,
    last_seen: Option<Stamp>,
}

/// `GET /customers`.
pub async fn customers_page(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, AppError> {
    let now = OffsetDateTime::now_utc();
    let visible: Option<Vec<String>> = match principal.visibility() {
        Visibility::All => None,
        Visibility::Orgs(orgs) => Some(orgs.iter().cloned().collect()),
    };
    let ranked = state.store.orgs_ranked(visible.as_deref(), now).await?;
    let ids: Vec<String> = ranked.iter().map(|o| o.org.clone()).collect();
    let mut trends = state.store.org_trends(ids.clone(), SPARK_DAYS, now).await?;
    let mut tams = state.store.org_tams(ids).await?;
    let (from, to) = (now.date() - time::Duration::days(SPARK_DAYS - 1), now.date());
    // Stored times are fixed-width UTC text: the greatest is the latest.
    let data_as_of = ranked.iter().filter_map(|o| o.last_seen.clone()).max();
    let rows = ranked
        .into_iter()
        .map(|o| {
            let trend: Vec<(String, f64)> = trends
                .remove(&o.org)
                .unwrap_or_default()
                .into_iter()
                .map(|d| (d.day, d.score))
                .collect();
            Row {
                spark: sparkline(
                    &daily_points(&trend),
                    from,
                    to,
                    &format!("Risk score of {}", o.name),
                ),
                tier: tier_label(o.tier.as_deref()),
                tams: tams.remove(&o.org).unwrap_or_default().join(", "),
                scored: o.scored,
                score: score_text(o.score),
                change_7d: Delta::new(o.change_7d, 7),
                change_30d: Delta::new(o.change_30d, 30),
                open_criticals: o.open_criticals,
                stale_hosts: o.stale_hosts,
                hosts: o.hosts,
                last_seen: o.last_seen.as_deref().map(Stamp::new),
                org: o.org,
                name: o.name,
            }
        })
        .collect();
    let unassigned = matches!(principal.visibility(), Visibility::Orgs(orgs) if orgs.is_empty());
    Ok(html(
        StatusCode::OK,
        &CustomersPage {
            layout: Layout::new(&principal, "customers", data_as_of.as_deref()),
            rows,
            unassigned,
        },
    ))
}
