//! Status of an archive: hosters (up/down, domain, stored bytes), segments (sealed, dispersed,
//! under-replicated) and watermarks, as a serializable report.

use serde::Serialize;
use tokio::task::JoinSet;

use crate::archive::Archive;
use crate::error::Result;
use crate::remote::timed;

#[derive(Clone, Debug, Serialize)]
pub struct HosterStatus {
    pub name: String,
    pub domain: String,
    pub up: bool,
    pub stored_bytes: Option<u64>,
    pub error: Option<String>,
    /// Shards of this archive that the placement records put on this hoster.
    pub shards_placed: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Watermarks {
    /// Last appended block number.
    pub appended: Option<u64>,
    /// Last block in a sealed segment.
    pub sealed: Option<u64>,
    /// Last block in a dispersed segment.
    pub dispersed: Option<u64>,
    /// Local segment files below this segment were deleted (`prune`, or a node's maintenance);
    /// the hosters hold them, verified. (The node's own pruning is its `archiver_status`.)
    pub local_segments_pruned_below: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub hosters: Vec<HosterStatus>,
    pub segments_sealed: u64,
    pub segments_dispersed: u64,
    pub segments_pending: u64,
    /// (segment, shards placed or found good, shards total): placements with shards missing and
    /// segments the last repair found short.
    pub under_replicated: Vec<(u64, usize, usize)>,
    pub watermarks: Watermarks,
    pub data_shards: usize,
    pub parity_shards: usize,
}

impl Archive {
    pub async fn status(&self) -> Result<Status> {
        let store = self.store();
        let sealed = store.sealed_all()?;
        let dispersed_next = store.dispersed_next()?;
        let mut under = Vec::new();
        let mut placed_on: std::collections::HashMap<String, u64> = Default::default();
        for s in 0..dispersed_next {
            if let Some(p) = store.placement(s)? {
                for name in p.hosters.iter().flatten() {
                    *placed_on.entry(name.clone()).or_default() += 1;
                }
                if p.placed() < p.hosters.len() {
                    under.push((s, p.placed(), p.hosters.len()));
                }
            }
        }
        // What the last repair found short although the placement still names a hoster (a
        // shard that found no new home keeps its entry): status and repair agree.
        for (s, good, total) in store.short_all()? {
            match under.iter_mut().find(|(u, _, _)| *u == s) {
                Some(entry) => entry.1 = entry.1.min(good),
                None => under.push((s, good, total)),
            }
        }
        under.sort_unstable();
        let mut set = JoinSet::new();
        for (i, h) in self.hosters().all().iter().enumerate() {
            let h = h.clone();
            set.spawn(async move {
                let res = timed(async {
                    h.ping().await?;
                    h.stored_bytes().await
                })
                .await;
                (i, h.name().to_string(), h.domain().to_string(), res)
            });
        }
        let mut hosters = Vec::new();
        while let Some(Ok((i, name, domain, res))) = set.join_next().await {
            let shards_placed = placed_on.get(&name).copied().unwrap_or(0);
            hosters.push((
                i,
                HosterStatus {
                    up: res.is_ok(),
                    stored_bytes: res.as_ref().ok().copied(),
                    error: res.err().map(|e| e.to_string()),
                    name,
                    domain,
                    shards_placed,
                },
            ));
        }
        hosters.sort_by_key(|(i, _)| *i);
        let last_of = |seg: Option<u64>| -> Result<Option<u64>> {
            Ok(match seg {
                Some(s) => store.sealed(s)?.map(|x| x.last_number),
                None => None,
            })
        };
        Ok(Status {
            hosters: hosters.into_iter().map(|(_, h)| h).collect(),
            segments_sealed: sealed.len() as u64,
            segments_dispersed: dispersed_next,
            segments_pending: (sealed.len() as u64).saturating_sub(dispersed_next),
            under_replicated: under,
            watermarks: Watermarks {
                appended: self.log().last().map(|l| l.0),
                sealed: sealed.last().map(|s| s.last_number),
                dispersed: last_of(dispersed_next.checked_sub(1))?,
                local_segments_pruned_below: store.local_segments_pruned_below()?,
            },
            data_shards: self.config().data_shards,
            parity_shards: self.config().parity_shards,
        })
    }
}
