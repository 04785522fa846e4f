//! A queue's handler slots, and how far ahead of them its tasks may be claimed.
//!
//! A claim is a Postgres round trip. Taken only once a slot is free, it sits between one
//! handler's end and the next one's start, and at low concurrency that chain bounds the
//! queue (BENCHMARKS.md: 0.68 ms per noop task at concurrency 1, most of it the claim).
//! Claiming a few messages ahead hides it, at a price: a task claimed ahead is `running`
//! (its attempt counted, its lease held) while it waits for a slot, and no other replica
//! can start it. So a queue claims ahead only as many tasks as slots free up during about
//! two claims (more would only wait: measured, claiming far ahead of 40 ms ledger writers
//! cost them 5–10 %), only while the expected wait stays under [`AHEAD_WAIT_BUDGET`], and a
//! task that still waits longer than [`AHEAD_WAIT_MAX`] (a long attempt arrived after it was
//! claimed) is given back without counting. A worker lost meanwhile costs a task claimed ahead nothing either: a lost lease
//! of a task that shared its worker is forgiven (`store::take_expired`).

mod gate;

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

pub use gate::{GatedService, Reserved, SlotGate};

/// Expected wait of a task claimed ahead, at most: the queue stops claiming ahead when the
/// tasks already waiting, run at its typical handler time, would take longer than this.
pub const AHEAD_WAIT_BUDGET: Duration = Duration::from_millis(20);

/// Longest a task claimed ahead waits for a slot before it is given back.
pub const AHEAD_WAIT_MAX: Duration = Duration::from_secs(2);

/// A mean not known yet: nothing is claimed ahead before a first claim and a first attempt.
const UNKNOWN: u64 = u64::MAX;

pub struct Slots {
    permits: Arc<Semaphore>,
    concurrency: usize,
    /// Tasks claimed ahead, waiting for a slot now.
    waiting: AtomicUsize,
    /// Exponentially weighted mean of recent handler times, in µs (weight 1/8 per attempt).
    typical_us: AtomicU64,
    /// The same for claims, from asking to the claimed row.
    claim_us: AtomicU64,
    /// Longest a task claimed ahead waits (tests shorten it).
    wait_max: Duration,
    /// Woken whenever a reservation may have become possible (a slot freed, a task claimed
    /// ahead got its slot, a handler time was learnt).
    room: Notify,
}

/// What a message holds before its claim: a free slot, or its place among the tasks that
/// may be claimed ahead of one (see [`Slots::reserve`]).
pub enum SlotHold {
    Now(Slot),
    Ahead(AheadTicket),
}

/// One of the queue's handler slots, held until the attempt's handler returned.
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.permit.take();
        self.slots.room.notify_waiters();
    }
}

/// One task counted among those claimed ahead, until it gets its slot or gives up.
pub struct AheadTicket(Arc<Slots>);

impl Drop for AheadTicket {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
        self.0.room.notify_waiters();
    }
}

impl Slots {
    pub fn new(concurrency: usize) -> Arc<Self> {
        Self::with_wait_max(concurrency, AHEAD_WAIT_MAX)
    }

    pub fn with_wait_max(concurrency: usize, wait_max: Duration) -> Arc<Self> {
        let concurrency = concurrency.max(1);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            waiting: AtomicUsize::new(0),
            typical_us: AtomicU64::new(UNKNOWN),
            claim_us: AtomicU64::new(UNKNOWN),
            wait_max,
            room: Notify::new(),
        })
    }

    /// Tasks the queue may claim ahead of its slots, at most (what frees up during two claims,
    /// or the wait budget, usually stops it first). Enough that a queue of concurrency 1
    /// batches its claims, and that short handlers at 50–64 slots keep claims in flight while
    /// every slot is busy (measured: twice the concurrency drains noop tasks 3–9 % faster
    /// than once, four times 5–7 % faster than twice on a quiet machine, six times no faster
    /// than four; BENCHMARKS.md "Issue 15, fourth step" and "sixth step"). The consumer only
    /// takes a message once it holds a reservation ([`SlotGate`]), so a queue of long
    /// handlers holds no more messages than its slots, whatever this says.
    pub fn ahead_capacity(concurrency: usize) -> usize {
        (4 * concurrency).clamp(16, 400)
    }

    /// Whether a slot waits on the claim of the message holding `hold`: its own, or one that
    /// is free right now (every task claimed ahead is still being claimed, so the slot idles
    /// meanwhile). Such a claim is urgent; any other may wait to share its statement.
    pub fn waits_on_claim(&self, hold: &SlotHold) -> bool {
        matches!(hold, SlotHold::Now(_)) || self.permits.available_permits() > 0
    }

    /// Tasks claimed ahead and waiting for a slot now (they count as `running`).
    pub fn claimed_ahead(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Reserves for one message: a free slot, or a place to claim ahead of one while the
    /// queue's handlers are short; else waits until one of them is possible.
    pub async fn reserve(self: &Arc<Self>) -> SlotHold {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before the check, so a slot freed in between still wakes it.
            room.as_mut().enable();
            if let Some(hold) = self.try_reserve() {
                return hold;
            }
            room.await;
        }
    }

    fn try_reserve(self: &Arc<Self>) -> Option<SlotHold> {
        // A free slot goes to the tasks already claimed ahead first. The consumer's gate
        // reserves before its next message exists and holds what it got until one comes:
        // holding the free slot then, it kept the tasks claimed ahead from starting until
        // they were given back, 2 s later (seen at the end of drains at concurrency 1).
        if self.waiting.load(Ordering::Relaxed) == 0 {
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                return Some(SlotHold::Now(self.holding(permit)));
            }
        }
        if self.may_claim_ahead() {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            return Some(SlotHold::Ahead(AheadTicket(self.clone())));
        }
        None
    }

    /// After the claim: the slot, waited for up to the longest wait of a task claimed ahead
    /// (tasks claimed ahead queue for freed slots before any new reservation). `None` when
    /// it did not come in time: the caller gives the task back.
    pub async fn slot(self: &Arc<Self>, hold: SlotHold) -> Option<Slot> {
        match hold {
            SlotHold::Now(slot) => Some(slot),
            SlotHold::Ahead(ticket) => {
                let permit =
                    tokio::time::timeout(self.wait_max, self.permits.clone().acquire_owned()).await;
                drop(ticket);
                let permit = permit.ok().and_then(Result::ok)?;
                Some(self.holding(permit))
            }
        }
    }

    fn holding(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            permit: Some(permit),
            slots: self.clone(),
        }
    }

    /// Records how long a handler ran.
    pub fn observe(&self, ran: Duration) {
        mean_in(&self.typical_us, ran);
        self.room.notify_waiters();
    }

    /// Records how long a claim took.
    pub fn observe_claim(&self, took: Duration) {
        mean_in(&self.claim_us, took);
    }

    fn may_claim_ahead(&self) -> bool {
        let typical = self.typical_us.load(Ordering::Relaxed);
        let claim = self.claim_us.load(Ordering::Relaxed);
        if typical == UNKNOWN || claim == UNKNOWN {
            return false;
        }
        let concurrency = self.concurrency as u64;
        // The tasks already ahead plus this one share `concurrency` slots as they free up.
        let ahead = self.waiting.load(Ordering::Relaxed) as u64 + 1;
        let expected_us = ahead.saturating_mul(typical) / concurrency;
        // Slots that free up during two claims: more claimed ahead would only wait.
        let useful = (2 * concurrency).saturating_mul(claim) / typical.max(1) + 1;
        ahead <= useful
            && ahead as usize <= Self::ahead_capacity(self.concurrency)
            && expected_us <= AHEAD_WAIT_BUDGET.as_micros() as u64
    }
}

/// Folds `sample` into the mean kept in `mean_us` (weight 1/8; the first sample is taken as is).
fn mean_in(mean_us: &AtomicU64, sample: Duration) {
    let us = sample.as_micros().min(u64::MAX as u128 - 1) as u64;
    let _ = mean_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
        Some(if old == UNKNOWN {
            us
        } else {
            old - old / 8 + us / 8
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots that have seen a claim take `claim` and a handler run `handler`.
    fn learnt(slots: &Arc<Slots>, claim: Duration, handler: Duration) {
        slots.observe_claim(claim);
        slots.observe(handler);
    }

    /// Reserves on a task of its own; true if the reservation is of the kind `wanted`.
    fn reserve_apart(
        slots: &Arc<Slots>,
        wanted: fn(&SlotHold) -> bool,
    ) -> tokio::task::JoinHandle<bool> {
        let slots = slots.clone();
        tokio::spawn(async move { wanted(&slots.reserve().await) })
    }

    #[tokio::test]
    async fn claims_ahead_only_once_handlers_are_known_to_be_short() {
        let slots = Slots::new(1);
        let first = slots.reserve().await;
        assert!(matches!(first, SlotHold::Now(_)));
        // Unknown handler time: the next claim waits for the slot.
        let waiting = tokio::time::timeout(Duration::from_millis(50), slots.reserve()).await;
        assert!(
            waiting.is_err(),
            "claimed ahead before any handler time was known"
        );

        learnt(&slots, Duration::from_millis(1), Duration::from_micros(100));
        let ahead = slots.reserve().await;
        assert!(matches!(ahead, SlotHold::Ahead(_)));
        drop(first);
        assert!(slots.slot(ahead).await.is_some());
    }

    #[tokio::test]
    async fn a_free_slot_goes_to_the_task_claimed_ahead_not_to_the_next_reservation() {
        let slots = Slots::new(1);
        learnt(&slots, Duration::from_millis(1), Duration::from_micros(100));
        let running = slots.reserve().await;
        assert!(matches!(running, SlotHold::Now(_)));
        let ahead = slots.reserve().await;
        assert!(matches!(ahead, SlotHold::Ahead(_)));
        drop(running);
        // The gate's next reservation, made before its message exists, leaves the slot free.
        let next = slots.reserve().await;
        assert!(matches!(next, SlotHold::Ahead(_)), "took the slot");
        let slot = tokio::time::timeout(Duration::from_millis(100), slots.slot(ahead)).await;
        assert!(slot.expect("the freed slot").is_some());
    }

    #[tokio::test]
    async fn long_handlers_claim_nothing_ahead() {
        let slots = Slots::new(4);
        learnt(
            &slots,
            Duration::from_millis(10),
            Duration::from_millis(100),
        );
        let held: Vec<_> = futures_held(&slots, 4).await;
        // 100 ms per attempt over 4 slots: one more would wait ≈ 25 ms > the budget.
        let next = tokio::time::timeout(Duration::from_millis(50), slots.reserve()).await;
        assert!(next.is_err(), "claimed ahead of long handlers");
        drop(held);
    }

    #[tokio::test]
    async fn ahead_stops_at_the_budget_and_capacity() {
        let slots = Slots::new(1);
        learnt(&slots, Duration::from_millis(50), Duration::from_millis(5));
        let _running = slots.reserve().await;
        // 5 ms each on one slot: four fit in 20 ms, the fifth does not.
        let mut ahead = Vec::new();
        for _ in 0..4 {
            let hold = slots.reserve().await;
            assert!(matches!(hold, SlotHold::Ahead(_)));
            ahead.push(hold);
        }
        assert_eq!(slots.claimed_ahead(), 4);
        let fifth = tokio::time::timeout(Duration::from_millis(50), slots.reserve()).await;
        assert!(fifth.is_err());

        let quick = Slots::new(1);
        learnt(&quick, Duration::from_millis(1), Duration::from_micros(1));
        let _running = quick.reserve().await;
        let mut n = 0;
        while let Ok(SlotHold::Ahead(t)) =
            tokio::time::timeout(Duration::from_millis(20), quick.reserve()).await
        {
            std::mem::forget(t);
            n += 1;
        }
        assert_eq!(n, Slots::ahead_capacity(1));
    }

    #[tokio::test]
    async fn claims_ahead_only_as_many_as_free_up_during_two_claims() {
        let slots = Slots::new(8);
        // 10 ms handlers on 8 slots free one every 1.25 ms; a claim takes 1 ms: two claims
        // see one or two slots free, so two tasks are claimed ahead, not the budget's 16.
        learnt(&slots, Duration::from_millis(1), Duration::from_millis(10));
        let _running = futures_held(&slots, 8).await;
        let ahead = futures_held(&slots, 2).await;
        assert!(ahead.iter().all(|h| matches!(h, SlotHold::Ahead(_))));
        let third = tokio::time::timeout(Duration::from_millis(50), slots.reserve()).await;
        assert!(third.is_err(), "claimed more ahead than would free up");
    }

    #[tokio::test]
    async fn a_task_claimed_ahead_gives_up_after_the_longest_wait() {
        let slots = Slots::with_wait_max(1, Duration::from_millis(30));
        learnt(&slots, Duration::from_millis(1), Duration::from_micros(10));
        let _running = slots.reserve().await;
        let ahead = slots.reserve().await;
        assert!(slots.slot(ahead).await.is_none());
        assert_eq!(slots.waiting.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_waiting_reservation_wakes_when_a_slot_frees_or_handlers_prove_short() {
        let slots = Slots::new(1);
        let first = slots.reserve().await;
        let waiter = reserve_apart(&slots, |h| matches!(h, SlotHold::Now(_)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(first);
        let got_the_slot = tokio::time::timeout(Duration::from_secs(1), waiter).await;
        assert!(got_the_slot.unwrap().unwrap(), "woken with the freed slot");

        let busy = Slots::new(1);
        busy.observe_claim(Duration::from_millis(1));
        let _running = busy.reserve().await;
        let waiter = reserve_apart(&busy, |h| matches!(h, SlotHold::Ahead(_)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        busy.observe(Duration::from_micros(50));
        let ahead = tokio::time::timeout(Duration::from_secs(1), waiter).await;
        assert!(ahead.unwrap().unwrap(), "woken once handlers proved short");
    }

    async fn futures_held(slots: &Arc<Slots>, n: usize) -> Vec<SlotHold> {
        let mut held = Vec::new();
        for _ in 0..n {
            held.push(slots.reserve().await);
        }
        held
    }
}
