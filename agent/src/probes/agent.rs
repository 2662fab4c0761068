//! `agent` probe: the agent's own health, from the [`AgentHealth`](super::AgentHealth) that whoever
//! runs the probes fills (the delivery and spool code). It describes the running agent, so it is
//! the same under `--root`: a tree changes the host read, not the agent reading it. Its schedule
//! interval is measured from the host's "now" (a tree's capture time), so fixtures stay stable.

use callhome_shared::AgentSection;

use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let health = &ctx.agent;
    Ok(ProbeOutput::Section(Section::Agent(AgentSection {
        version: crate::AGENT_VERSION.to_string(),
        spool_depth: health.spool_depth,
        spool_bytes: health.spool_bytes,
        last_delivery: health.last_delivery,
        dropped_since_last_delivery: health.dropped_since_last_delivery,
        quarantined: health.quarantined,
        last_error: health.last_error.clone(),
        schedule_interval_secs: schedule_interval_secs(ctx),
    })))
}

/// What the `[schedule]` promises; an unreadable schedule (which config validation refuses) says
/// nothing rather than failing the probe.
fn schedule_interval_secs(ctx: &ProbeContext) -> Option<u64> {
    let schedule = ctx.config.schedule().ok()?;
    schedule.promised_interval(ctx.now()).map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::probes::{AgentHealth, testing};
    use time::macros::datetime;

    #[test]
    fn reports_the_health_it_is_given_and_its_own_version() {
        let ctx = ProbeContext {
            agent: Arc::new(AgentHealth {
                spool_depth: 3,
                spool_bytes: 24_576,
                dropped_since_last_delivery: 1,
                quarantined: 2,
                last_delivery: Some(datetime!(2026-11-20 08:00:00 UTC)),
                last_error: Some("collector answered 503".into()),
            }),
            ..testing::context("rpm-healthy")
        };
        let Section::Agent(s) = testing::section(probe, &ctx) else {
            panic!()
        };
        assert_eq!(s.version, env!("CARGO_PKG_VERSION"));
        assert_eq!((s.spool_depth, s.spool_bytes), (3, 24_576));
        assert_eq!((s.dropped_since_last_delivery, s.quarantined), (1, 2));
        assert_eq!(s.last_delivery, Some(datetime!(2026-11-20 08:00:00 UTC)));
        assert_eq!(s.last_error.as_deref(), Some("collector answered 503"));
    }

    #[test]
    fn defaults_are_an_empty_spool_and_no_delivery_yet() {
        let Section::Agent(s) = testing::section(probe, &testing::context("rpm-healthy")) else {
            panic!()
        };
        assert_eq!(s.spool_depth, 0);
        assert_eq!(s.last_delivery, None);
        assert_eq!(s.last_error, None);
    }

    #[test]
    fn schedule_interval_is_the_longest_gap_plus_the_splay() {
        // Default schedule: hourly with a 900 s splay.
        let Section::Agent(s) = testing::section(probe, &testing::context("rpm-healthy")) else {
            panic!()
        };
        assert_eq!(s.schedule_interval_secs, Some(3600 + 900));

        let config =
            crate::config::Config::from_toml("[schedule]\ncron = \"0 0,6,12 * * *\"\nsplay_secs = 60\n")
                .unwrap();
        let ctx = testing::context_with("rpm-healthy", config);
        let Section::Agent(s) = testing::section(probe, &ctx) else {
            panic!()
        };
        assert_eq!(s.schedule_interval_secs, Some(12 * 3600 + 60));
    }
}
