//! Electing the next Raft leader as soon as failure detection reports the current one down,
//! instead of waiting for openraft's election timer.
//!
//! Only the leader declares a node failed, so when the leader itself dies nothing fails over
//! until there is a new one. Left to openraft (0.9), that takes long: a follower that heard
//! from a leader stands for election only after the leader's lease *and* its own election
//! timeout, `2E + (E..2E)` of silence (2.4-3.2 s with `E` = 800 ms), and until the lease (`2E`)
//! has run out it refuses to vote for anyone else. Failure detection knows sooner (about 0.8 s
//! after a `kill -9` of one of three nodes, with the default node timeout), so:
//!
//! - every voter whose detector reports the leader it follows down stands for election once
//!   (`Raft::trigger().elect()`). Standing is also the only way, with openraft's API, to give up
//!   the dead leader's lease: a node that has voted for itself no longer holds one, and grants
//!   its vote to a candidate with a newer vote. Survivors that stand in the same term do not
//!   split the vote: openraft 0.9 orders the candidates of one term by node id, and a voter
//!   that voted for a lower one switches to the higher.
//! - Detectors report at slightly different moments, though, and a survivor that stands first
//!   asks the others while they still hold the lease; they refuse, and a candidate does not ask
//!   again before its election timeout. So one of them, the live voter with the lowest id,
//!   stands again every `retry` for a while: once the others have stood, its next, higher term
//!   wins their votes. One node rather than all, so that attempts do not overtake each other;
//!   any new leader will do, the lowest id only picks the same node everywhere.
//!
//! A three-node cluster then has a new leader at once when both survivors' detectors report
//! within one vote round trip, else within one `retry` of the later report; the new leader
//! declares the old one failed at its next membership tick.
//!
//! Why not shorter election timeouts instead: to bring openraft's own election under the 2 s
//! failover target, `E` would have to drop to about 350 ms, and a follower would stand after
//! about 1.1 s without a heartbeat, on any stall of the leader (a busy machine, a long pause).
//! Each such election deposes a live leader (its next heartbeat meets a higher term), and a
//! busy CI machine would see them. Failure detection is slower to convince: a member is down
//! only after direct and indirect probes fail and a suspicion it could refute runs out, and
//! being reported down already gets a node declared failed, a far bigger step than an
//! election. Raft's timers stay as they were; they remain the fallback.
//!
//! Limits: the lowest id may have a shorter log than another survivor (an entry the old leader
//! sent to only some followers); the others then refuse it, it stops retrying after `window`,
//! and openraft's timers elect one of them, as without this. A detector that wrongly reports a
//! live leader down now costs an election as well; if the node it misled wins, it declares the
//! old leader failed, as any leader does with what its detector reports (the old leader, alive,
//! then asks to join again). SWIM gossips a `Down` to every member and the member refutes it,
//! so such a report is rare and short-lived.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::topology::NodeId;

/// One node's memory of the leader it lost, and whether to stand for election now.
/// A state machine without I/O: [`Succession::step`] says when; the caller triggers openraft.
#[derive(Debug)]
pub(super) struct Succession {
    /// How long the lowest live voter waits between two attempts.
    retry: Duration,
    /// How long after its first attempt it stops retrying (openraft's timers take over).
    window: Duration,
    lost: Option<Lost>,
}

/// A leader reported down while this node followed it.
#[derive(Debug)]
struct Lost {
    leader: NodeId,
    first: Instant,
    last: Instant,
}

impl Succession {
    pub(super) fn new(retry: Duration, window: Duration) -> Self {
        Self {
            retry,
            window,
            lost: None,
        }
    }

    /// Whether node `me` should stand for election now, given the leader it follows (`None`
    /// while an election is under way), the members whose votes count, and the members failure
    /// detection reports down.
    pub(super) fn step(
        &mut self,
        now: Instant,
        me: &str,
        leader: Option<&str>,
        voters: &BTreeSet<NodeId>,
        down: &HashSet<NodeId>,
    ) -> bool {
        match leader {
            // The leader answers (or is this node): nothing lost, or no longer.
            Some(leader) if !down.contains(leader) => {
                self.lost = None;
                return false;
            }
            // The first report of the leader this node follows. A learner's vote does not
            // count, nor can it lead.
            Some(leader) if self.lost.as_ref().is_none_or(|l| l.leader != leader) => {
                if !voters.contains(me) {
                    return false;
                }
                self.lost = Some(Lost {
                    leader: leader.to_owned(),
                    first: now,
                    last: now,
                });
                return true;
            }
            // Still following the lost leader, or an election is under way.
            _ => {}
        }
        // No lost leader while an election is under way: openraft started it, not us.
        let Some(lost) = self.lost.as_mut() else {
            return false;
        };
        if !down.contains(&lost.leader) {
            // The old leader answers again: whoever wins the election under way leads.
            self.lost = None;
            return false;
        }
        let lowest = voters.iter().find(|v| !down.contains(*v));
        let again = lowest.is_some_and(|v| v == me)
            && now >= lost.last + self.retry
            && now < lost.first + self.window;
        if again {
            lost.last = now;
        }
        again
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Duration = Duration::from_millis(200);
    const WINDOW: Duration = Duration::from_millis(800);

    fn set<T: FromIterator<NodeId>>(ids: &[&str]) -> T {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Runs `step` every 100 ms from `start` for `ticks` ticks with a fixed view, and returns
    /// the ticks (0-based) at which it said to stand.
    fn stands(
        s: &mut Succession,
        start: Instant,
        ticks: u32,
        me: &str,
        leader: Option<&str>,
        down: &[&str],
    ) -> Vec<u32> {
        let voters: BTreeSet<NodeId> = set(&["a", "b", "c"]);
        let down: HashSet<NodeId> = set(down);
        (0..ticks)
            .filter(|&i| {
                let now = start + Duration::from_millis(100) * i;
                s.step(now, me, leader, &voters, &down)
            })
            .collect()
    }

    #[test]
    fn every_voter_that_loses_its_leader_stands_once_and_the_lowest_live_one_again() {
        let start = Instant::now();
        // b and c survive a; b has the lowest live id. After their first attempt neither
        // follows a leader (an election is under way).
        let mut b = Succession::new(RETRY, WINDOW);
        assert_eq!(stands(&mut b, start, 1, "b", Some("a"), &["a"]), [0]);
        let later = start + Duration::from_millis(100);
        assert_eq!(
            stands(&mut b, later, 20, "b", None, &["a"]),
            [1, 3, 5],
            "every 200 ms until 800 ms after the first attempt"
        );
        let mut c = Succession::new(RETRY, WINDOW);
        assert_eq!(stands(&mut c, start, 1, "c", Some("a"), &["a"]), [0]);
        assert!(stands(&mut c, later, 20, "c", None, &["a"]).is_empty());
        // Still following the dead leader (its first attempt went nowhere): no second one.
        let mut c = Succession::new(RETRY, WINDOW);
        assert_eq!(stands(&mut c, start, 20, "c", Some("a"), &["a"]), [0]);
    }

    #[test]
    fn nothing_while_the_leader_answers_nor_for_a_learner_nor_in_an_election_of_raft_s_own() {
        let start = Instant::now();
        let mut s = Succession::new(RETRY, WINDOW);
        assert!(stands(&mut s, start, 20, "b", Some("a"), &[]).is_empty());
        assert!(
            stands(&mut s, start, 20, "b", Some("a"), &["c"]).is_empty(),
            "a follower down"
        );
        assert!(
            stands(&mut s, start, 20, "b", None, &["a"]).is_empty(),
            "openraft's own election: this node lost no leader it followed"
        );
        assert!(
            stands(&mut s, start, 20, "d", Some("a"), &["a"]).is_empty(),
            "a learner"
        );
        assert!(
            stands(&mut s, start, 20, "a", Some("a"), &["b"]).is_empty(),
            "the leader"
        );
    }

    #[test]
    fn a_new_leader_or_the_old_one_back_ends_it() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let voters: BTreeSet<NodeId> = set(&["a", "b", "c"]);
        let a_down: HashSet<NodeId> = set(&["a"]);
        let mut b = Succession::new(RETRY, WINDOW);
        assert!(b.step(at(0), "b", Some("a"), &voters, &a_down));
        // c won: b follows it, and a later loss of c starts over.
        assert!(!b.step(at(100), "b", Some("c"), &voters, &a_down));
        let both: HashSet<NodeId> = set(&["a", "c"]);
        assert!(b.step(at(200), "b", Some("c"), &voters, &both));

        let mut b = Succession::new(RETRY, WINDOW);
        assert!(b.step(at(0), "b", Some("a"), &voters, &a_down));
        // a answers again before anyone won: no more attempts.
        assert!(!b.step(at(200), "b", None, &voters, &HashSet::new()));
        assert!(!b.step(at(400), "b", None, &voters, &a_down));
    }
}
