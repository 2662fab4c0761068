//! `crashes` probe: being written (issue 3); until then it reports that it has nothing.

use super::{ProbeContext, ProbeFailure, ProbeOutput};

pub(super) fn probe(_ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    Err(ProbeFailure("not implemented yet".into()))
}
