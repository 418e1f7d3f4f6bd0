//! How much of the server one user's heavy requests may hold at once: lists (each may read,
//! decode and encode a whole collection) are limited per user, so that one client — any user
//! allowed to list — cannot take the memory and CPU every other client needs. Requests past
//! the limit wait for a slot, then get a 429 with `Retry-After`, as upstream's API Priority
//! and Fairness answers an exhausted queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Users whose slots are remembered; past that, idle users are forgotten.
const REMEMBERED_USERS: usize = 10_000;

/// At most `limit` heavy requests in flight per user.
pub struct PerUserLimit {
    limit: usize,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl PerUserLimit {
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for `user`, waiting at most `wait` for one; `None` if none came free.
    pub async fn acquire(&self, user: &str, wait: Duration) -> Option<OwnedSemaphorePermit> {
        let slots = {
            let mut all = self.slots.lock();
            if all.len() >= REMEMBERED_USERS {
                all.retain(|_, s| s.available_permits() < self.limit);
            }
            all.entry(user.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.limit)))
                .clone()
        };
        tokio::time::timeout(wait, slots.acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_user_waits_for_a_slot_and_others_are_not_held_up() {
        let limit = PerUserLimit::new(2);
        let wait = Duration::from_secs(5);
        let a1 = limit.acquire("alice", wait).await.unwrap();
        let _a2 = limit.acquire("alice", wait).await.unwrap();
        assert!(limit.acquire("alice", wait).await.is_none(), "a third slot");
        assert!(
            limit.acquire("bob", wait).await.is_some(),
            "another user waits"
        );
        drop(a1);
        assert!(limit.acquire("alice", wait).await.is_some());
    }
}
