//! Hoster health, tracked continuously from probes and challenge results: which hosters are
//! lost (their shards must be rebuilt elsewhere) and which came back (their shards must be
//! reconciled before they count again).

use std::collections::BTreeMap;

/// How long a hoster may stay unreachable before its shards are rebuilt elsewhere. Under a
/// minute: long enough that a restart or a network blip costs nothing, short enough that a
/// second failure rarely lands before redundancy is back (0-stor_v2 waits 15 minutes). The first
/// failed probe comes up to `PROBE_INTERVAL_MS_DEFAULT` after the loss and the verdict at the
/// first probe past this bound, so detection takes at most the bound plus two probe intervals
/// (55 s; `archiver bench --heal` measures it).
pub const HOSTER_LOST_AFTER_MS_DEFAULT: u64 = 45_000;

/// Consecutive failed challenges after which a reachable hoster is treated as lost: one failure
/// may be a slow moment, three in a row are a hoster that does not hold what it was given.
pub const CHALLENGE_FAILURES_MAX_DEFAULT: u32 = 3;

/// How often every hoster is pinged: cheap (one round trip each) and a tenth of the loss bound.
pub const PROBE_INTERVAL_MS_DEFAULT: u64 = 5_000;

/// When a hoster counts as lost (the config's `[ops.health]` table).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthPolicy {
    pub lost_after_ms: u64,
    pub challenge_failures_max: u32,
    pub probe_interval_ms: u64,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            lost_after_ms: HOSTER_LOST_AFTER_MS_DEFAULT,
            challenge_failures_max: CHALLENGE_FAILURES_MAX_DEFAULT,
            probe_interval_ms: PROBE_INTERVAL_MS_DEFAULT,
        }
    }
}

/// A change worth acting on (and logging).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthEvent {
    /// Unreachable past the bound: rebuild its shards elsewhere, place nothing on it.
    Lost { hoster: String, since_ms: u64 },
    /// A lost hoster answers again: use it again once its shards are reconciled.
    Returned { hoster: String },
    /// Reachable, but `failures` challenges in a row failed: none of its shards is trusted any
    /// more, so every one is read and checked (a content sweep); the count starts over.
    Untrusted { hoster: String, failures: u32 },
}

impl std::fmt::Display for HealthEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lost { hoster, since_ms } => {
                write!(f, "lost {hoster}: unreachable since {since_ms} ms")
            }
            Self::Returned { hoster } => write!(f, "returned {hoster}"),
            Self::Untrusted { hoster, failures } => {
                write!(
                    f,
                    "untrusted {hoster}: {failures} challenges failed in a row"
                )
            }
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Entry {
    failing_since_ms: Option<u64>,
    challenge_failures: u32,
    lost: bool,
    detected_at_ms: Option<u64>,
}

/// Per-hoster health state; pure: the caller feeds observations with their time.
#[derive(Clone, Debug)]
pub struct HealthTracker {
    policy: HealthPolicy,
    entries: BTreeMap<String, Entry>,
}

impl HealthTracker {
    pub fn new(policy: HealthPolicy, hosters: impl IntoIterator<Item = String>) -> Self {
        let entries = hosters.into_iter().map(|h| (h, Entry::default())).collect();
        Self { policy, entries }
    }

    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    /// A probe's result at `now_ms`.
    pub fn record_probe(&mut self, hoster: &str, ok: bool, now_ms: u64) -> Option<HealthEvent> {
        let lost_after = self.policy.lost_after_ms;
        let e = self.entries.entry(hoster.to_string()).or_default();
        if ok {
            e.failing_since_ms = None;
            if e.lost {
                e.lost = false;
                e.detected_at_ms = None;
                return Some(HealthEvent::Returned {
                    hoster: hoster.to_string(),
                });
            }
            return None;
        }
        let since = *e.failing_since_ms.get_or_insert(now_ms);
        if !e.lost && now_ms.saturating_sub(since) >= lost_after {
            e.lost = true;
            e.detected_at_ms = Some(now_ms);
            return Some(HealthEvent::Lost {
                hoster: hoster.to_string(),
                since_ms: since,
            });
        }
        None
    }

    /// The result of a challenge the hoster answered (or refused while reachable).
    pub fn record_challenge(&mut self, hoster: &str, passed: bool) -> Option<HealthEvent> {
        let max = self.policy.challenge_failures_max;
        let e = self.entries.entry(hoster.to_string()).or_default();
        if passed {
            e.challenge_failures = 0;
            return None;
        }
        e.challenge_failures += 1;
        if e.challenge_failures >= max {
            let failures = std::mem::take(&mut e.challenge_failures);
            return Some(HealthEvent::Untrusted {
                hoster: hoster.to_string(),
                failures,
            });
        }
        None
    }

    /// Hosters whose shards must be rebuilt elsewhere, by name.
    pub fn lost(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.lost)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Whether `hoster` answers probes (not failing, not lost as unreachable).
    pub fn is_up(&self, hoster: &str) -> bool {
        self.entries
            .get(hoster)
            .is_none_or(|e| e.failing_since_ms.is_none() && !e.lost)
    }

    /// When `hoster` was found lost, if it is.
    pub fn detected_at_ms(&self, hoster: &str) -> Option<u64> {
        self.entries.get(hoster).and_then(|e| e.detected_at_ms)
    }

    pub fn hosters(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> HealthTracker {
        HealthTracker::new(
            HealthPolicy {
                lost_after_ms: 1_000,
                challenge_failures_max: 2,
                probe_interval_ms: 100,
            },
            ["a".to_string(), "b".to_string()],
        )
    }

    #[test]
    fn unreachable_past_the_bound_is_lost_and_a_return_is_reported() {
        let mut t = tracker();
        assert_eq!(t.record_probe("a", false, 10_000), None);
        assert_eq!(t.record_probe("a", false, 10_999), None);
        assert!(!t.is_up("a"));
        let lost = t.record_probe("a", false, 11_000);
        assert_eq!(
            lost,
            Some(HealthEvent::Lost {
                hoster: "a".into(),
                since_ms: 10_000
            })
        );
        assert_eq!(t.lost(), vec!["a".to_string()]);
        assert_eq!(t.detected_at_ms("a"), Some(11_000));
        assert_eq!(t.record_probe("a", false, 12_000), None, "reported once");
        assert_eq!(
            t.record_probe("a", true, 13_000),
            Some(HealthEvent::Returned { hoster: "a".into() })
        );
        assert!(t.lost().is_empty() && t.is_up("a"));
    }

    #[test]
    fn a_blip_shorter_than_the_bound_costs_nothing() {
        let mut t = tracker();
        t.record_probe("b", false, 0);
        t.record_probe("b", true, 900);
        assert_eq!(t.record_probe("b", false, 1_500), None);
        assert_eq!(t.record_probe("b", false, 2_400), None);
        assert!(t.lost().is_empty());
    }

    #[test]
    fn consecutive_challenge_failures_distrust_a_reachable_hoster_once() {
        let mut t = tracker();
        assert_eq!(t.record_challenge("b", false), None);
        assert_eq!(t.record_challenge("b", true), None, "a pass resets");
        assert_eq!(t.record_challenge("b", false), None);
        assert_eq!(
            t.record_challenge("b", false),
            Some(HealthEvent::Untrusted {
                hoster: "b".into(),
                failures: 2
            })
        );
        assert_eq!(
            t.record_challenge("b", false),
            None,
            "the count starts over"
        );
        assert!(t.lost().is_empty() && t.is_up("b"), "reachable: still used");
    }
}
