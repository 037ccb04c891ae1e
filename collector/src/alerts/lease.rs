//! One alert scheduler in a fleet: the lease, and the ledgers beside it.
//!
//! Collectors that share an Elasticsearch/OpenSearch store run the alert rules one at
//! a time: the one holding the lease, the document `picket-scheduler/_doc/lease`
//! (`holder`, `until`). It is only ever written over the version read
//! (`if_seq_no`/`if_primary_term`, or `op_type=create` the first time), so of two
//! collectors taking it from the same state one wins and the other gets a conflict.
//! The holder renews it every third of `lease_secs`; when it stops (killed, cut off
//! from the cluster) the lease runs out and the next collector to look takes it.
//!
//! The rules' ledgers (what each rule has alerted on, and alerts decided but not yet
//! stored) are documents of the same index, `ledger-<rule>`, written by the holder
//! after each run: the next holder reads them when it takes the lease and goes on
//! from there, so an event counted by one collector is not counted again by another.
//!
//! Why a document in the store and not RabbitMQ's single-active consumer: the rules
//! read and write the store, not the broker (a fleet may use HTTP only), and a
//! collector cut off from the store cannot run them anyway; the ledgers need a shared
//! home, and the store is the one the fleet already has.
//!
//! Safety: a holder runs a rule only while its lease has more than [`MARGIN`] left by
//! its own clock, and a lease is taken for `lease_secs` from the taker's clock: with
//! clocks within [`MARGIN`] of each other (NTP), two holders never run at once. A holder
//! paused longer than that (a stopped VM) may finish the run it was in, but alerts are
//! stored only after the ledger holding them as pending is written over the version
//! read: once the next holder has written, the stalled one's write fails and it stores
//! nothing; written before, the next holder finds its alerts pending (same ids).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::{info, warn};

use crate::stores::StoreError;
use crate::stores::elasticsearch::ElasticStore;

/// The index of the lease and the ledgers.
pub const INDEX: &str = "picket-scheduler";
/// The lease's document id.
const LEASE: &str = "lease";
/// Least time left on a lease for a rule to run under it.
pub const MARGIN: Duration = Duration::from_secs(5);

/// This collector's view of the lease.
pub struct Lease {
    store: Arc<ElasticStore>,
    /// Who we are: `<hostname>/<pid>/<random>`.
    holder: String,
    ttl: chrono::Duration,
    /// Until when we hold it (by our clock), if we do.
    held_until: Option<DateTime<Utc>>,
    /// When we last took or renewed it (the monotonic clock: a run checks by it that
    /// the lease did not run out meanwhile, whatever clock the caller's `now` is).
    renewed: Option<std::time::Instant>,
    /// The index exists with its mappings (made at the first take).
    index_ready: bool,
}

impl Lease {
    pub fn new(store: Arc<ElasticStore>, ttl: Duration) -> Lease {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "collector".into());
        let holder = format!(
            "{host}/{}/{}",
            std::process::id(),
            &crate::alerts::new_id()[..8]
        );
        Lease::named(store, ttl, &holder)
    }

    /// A lease view under a given holder name (tests run several in one process).
    pub fn named(store: Arc<ElasticStore>, ttl: Duration, holder: &str) -> Lease {
        Lease {
            store,
            holder: holder.to_string(),
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30)),
            held_until: None,
            renewed: None,
            index_ready: false,
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// How often to renew it.
    pub fn renew_every(&self) -> Duration {
        (self.ttl / 3).to_std().unwrap_or(Duration::from_secs(10))
    }

    /// Whether the lease taken or renewed last is still ours with at least [`MARGIN`]
    /// left, by the time elapsed since (counted from before the request that took it).
    pub fn still_held(&self) -> bool {
        let ttl = self.ttl.to_std().unwrap_or_default();
        self.held_until.is_some() && self.renewed.is_some_and(|r| r.elapsed() + MARGIN < ttl)
    }

    /// Whether we hold it with more than half of it left: no renewal needed before a
    /// rule runs.
    pub fn fresh(&self) -> bool {
        let ttl = self.ttl.to_std().unwrap_or_default();
        self.held_until.is_some() && self.renewed.is_some_and(|r| r.elapsed() < ttl / 2)
    }

    /// Whether we hold it (as of the last take or renewal).
    pub fn held(&self) -> bool {
        self.held_until.is_some()
    }

    /// Takes or renews the lease at `now`: true when we hold it afterwards.
    pub async fn hold(&mut self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        // The lease is counted from before the requests: however long they take, we
        // never trust it longer than the others see it written.
        let asked = std::time::Instant::now();
        if !self.index_ready {
            self.store.ensure_index(INDEX, &mappings()).await?;
            self.index_ready = true;
        }
        let current = self.store.get_versioned(INDEX, LEASE).await?;
        let mine = json!({
            "holder": self.holder,
            "until": mozdef::time::format_utc(now + self.ttl),
            "taken": mozdef::time::format_utc(now),
        });
        let written = match &current {
            None => self
                .store
                .put_versioned(INDEX, LEASE, &mine, None, false)
                .await?
                .is_some(),
            Some(lease) => {
                let holder = lease.source["holder"].as_str().unwrap_or_default();
                let until = lease.source["until"]
                    .as_str()
                    .and_then(|t| mozdef::time::parse_str(t).ok())
                    .map(|t| t.with_timezone(&Utc));
                let free = holder == self.holder || until.is_none_or(|until| until <= now);
                if !free {
                    self.renewed = None;
                    if self.held_until.take().is_some() {
                        warn!(holder = %holder, "The alert lease went to another collector; alert rules stop here.");
                    }
                    return Ok(false);
                }
                self.store
                    .put_versioned(
                        INDEX,
                        LEASE,
                        &mine,
                        Some((lease.seq_no, lease.primary_term)),
                        false,
                    )
                    .await?
                    .is_some()
            }
        };
        if !written {
            self.held_until = None;
            self.renewed = None;
            return Ok(false);
        }
        if self.held_until.is_none() {
            let previous = current
                .as_ref()
                .and_then(|l| l.source["holder"].as_str())
                .unwrap_or("nobody");
            info!(holder = %self.holder, previous = %previous, "This collector holds the alert lease: it runs the alert rules.");
        }
        self.held_until = Some(now + self.ttl);
        self.renewed = Some(asked);
        Ok(true)
    }

    /// Lets the lease go (a clean stop), so the next collector need not wait it out.
    pub async fn release(&mut self, now: DateTime<Utc>) {
        if self.held_until.take().is_none() {
            return;
        }
        if let Ok(Some(lease)) = self.store.get_versioned(INDEX, LEASE).await
            && lease.source["holder"] == self.holder
        {
            let released = json!({
                "holder": self.holder,
                "until": mozdef::time::format_utc(now),
                "taken": lease.source["taken"],
            });
            let _ = self
                .store
                .put_versioned(
                    INDEX,
                    LEASE,
                    &released,
                    Some((lease.seq_no, lease.primary_term)),
                    false,
                )
                .await;
        }
    }
}

/// The ledger document of `rule`: `ledger-<name>` for a name of letters, digits, `.`,
/// `-` and `_`, else `ledger~<its bytes in hex>` (two rules never share one).
pub fn ledger_id(rule: &str) -> String {
    let plain = !rule.is_empty()
        && rule
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if plain {
        format!("ledger-{rule}")
    } else {
        let hex: String = rule.bytes().map(|b| format!("{b:02x}")).collect();
        format!("ledger~{hex}")
    }
}

/// The index's mappings: nothing is searched in it, and a ledger (a JSON text of
/// event ids, large for a busy rule) is kept, not indexed.
fn mappings() -> serde_json::Value {
    json!({
        "settings": { "number_of_shards": 1 },
        "mappings": {
            "dynamic": false,
            "properties": {
                "holder": { "type": "keyword" },
                "until": { "type": "date" },
                "rule": { "type": "keyword" },
                "ledger": { "type": "text", "index": false },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_ids_are_one_per_rule() {
        assert_eq!(ledger_id("ssh-bruteforce"), "ledger-ssh-bruteforce");
        assert_eq!(ledger_id("ssh.brute"), "ledger-ssh.brute");
        assert_ne!(ledger_id("ssh.brute"), ledger_id("ssh_brute"));
        assert_eq!(ledger_id("a b"), "ledger~612062");
        assert_ne!(ledger_id("a b"), ledger_id("a_b"));
    }
}
