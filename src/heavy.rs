//! Heavy reads, one at a time per member. A search, counting our words and an export each
//! cost the database far more than a send; one account firing many at once (parallel
//! one-character searches, a dozen exports) could otherwise keep the read pool busy for
//! everyone. A member runs one heavy read and one export at a time; another one at the same
//! moment is refused with 429 `rate_limited` and `Retry-After`, while the partner's own are
//! untouched. The count is per node, in memory: a member talking to two nodes can run one on
//! each, which still bounds them by the number of nodes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use uuid::Uuid;

use crate::error::{Error, Result};

/// What kind of heavy work a permit is for; a member holds at most one of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A search or a look at our words: answered within the read timeout.
    Read,
    /// A download of our whole history: minutes for a long one.
    Export,
}

impl Kind {
    /// When another one may start: a read is over within a second or so, an export takes
    /// longer.
    fn retry_after(self) -> Duration {
        match self {
            Kind::Read => Duration::from_secs(1),
            Kind::Export => Duration::from_secs(10),
        }
    }

    fn refusal(self) -> &'static str {
        match self {
            Kind::Read => "your previous search or count is still running, try again in a moment",
            Kind::Export => "your previous export is still running, try again later",
        }
    }
}

/// The heavy reads running on this node, by member.
#[derive(Default)]
pub struct Heavy {
    running: Mutex<HashSet<(Uuid, Kind)>>,
}

/// A member's turn at one kind of heavy work; dropping it (the work finished, failed or was
/// abandoned by the client) ends the turn.
pub struct Permit {
    heavy: Arc<Heavy>,
    key: (Uuid, Kind),
}

impl Heavy {
    /// The member's turn, or 429 when one of this kind is still running.
    pub fn begin(self: &Arc<Self>, user_id: Uuid, kind: Kind) -> Result<Permit> {
        let key = (user_id, kind);
        if !self.lock().insert(key) {
            tracing::debug!(%user_id, ?kind, "heavy read refused: one is running");
            return Err(Error::TryLater {
                message: kind.refusal(),
                retry_after: kind.retry_after(),
            });
        }
        Ok(Permit {
            heavy: Arc::clone(self),
            key,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<(Uuid, Kind)>> {
        // A plain set stays usable after a panic elsewhere.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.heavy.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_of_each_kind_per_member_and_a_dropped_permit_frees_the_turn() {
        let heavy = Arc::new(Heavy::default());
        let (me, partner) = (Uuid::new_v4(), Uuid::new_v4());
        let read = heavy.begin(me, Kind::Read).unwrap();
        assert!(matches!(
            heavy.begin(me, Kind::Read),
            Err(Error::TryLater { retry_after, .. }) if retry_after == Duration::from_secs(1)
        ));
        let _export = heavy.begin(me, Kind::Export).unwrap();
        assert!(matches!(
            heavy.begin(me, Kind::Export),
            Err(Error::TryLater { retry_after, .. }) if retry_after == Duration::from_secs(10)
        ));
        let _theirs = heavy.begin(partner, Kind::Read).unwrap();
        drop(read);
        assert!(heavy.begin(me, Kind::Read).is_ok());
    }
}
