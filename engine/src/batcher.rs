//! Batching and retrying database calls: what lets one process run thousands of tasks per
//! second while Postgres holds every state (the runner's claims and completions, group
//! commits of kinds' effects).

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot, Semaphore};

/// Groups concurrent calls into batch calls: whatever queued up while earlier batches ran
/// goes into the next one. Up to `in_flight` batches run at once.
pub struct Batcher<I, O> {
    tx: mpsc::UnboundedSender<(I, oneshot::Sender<O>)>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    pub fn spawn<F, Fut>(max: usize, in_flight: usize, run: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        Self::spawn_lingering(max, in_flight, Duration::ZERO, run)
    }

    /// Like [`Batcher::spawn`], but a batch that is not full waits up to `linger` after its
    /// first call for more: fewer, larger batches for calls nobody waits on urgently.
    pub fn spawn_lingering<F, Fut>(max: usize, in_flight: usize, linger: Duration, run: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        Self::spawn_patient(max, in_flight, linger, |_| false, run)
    }

    /// Like [`Batcher::spawn_lingering`], but only while none of the batch's calls is
    /// `urgent`: a batch waits for more only as long as nobody waits on it, and an urgent
    /// call ends the wait at once.
    pub fn spawn_patient<F, Fut, U>(
        max: usize,
        in_flight: usize,
        linger: Duration,
        urgent: U,
        run: F,
    ) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
        U: Fn(&I) -> bool + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(I, oneshot::Sender<O>)>();
        let run = Arc::new(run);
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            while let Some((i, reply)) = rx.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut patient = !linger.is_zero() && !urgent(&i);
                let mut inputs = vec![i];
                let mut replies = vec![reply];
                let deadline = tokio::time::Instant::now() + linger;
                while inputs.len() < max {
                    let next = match rx.try_recv() {
                        Ok(next) => next,
                        Err(_) if !patient => break,
                        Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(next)) => next,
                            _ => break,
                        },
                    };
                    patient &= !urgent(&next.0);
                    inputs.push(next.0);
                    replies.push(next.1);
                }
                let run = run.clone();
                tokio::spawn(async move {
                    let outputs = run(inputs).await;
                    for (reply, out) in replies.into_iter().zip(outputs) {
                        let _ = reply.send(out);
                    }
                    drop(slot);
                });
            }
        });
        Self { tx }
    }

    pub async fn call(&self, input: I) -> Option<O> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((input, reply)).ok()?;
        rx.await.ok()
    }
}

/// Retries a database call through short outages before giving up.
pub async fn with_retries<T, F, Fut>(what: &str, mut f: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let delays = [50u64, 200, 1000, 3000, 5000];
    let mut last = None;
    for (i, delay) in std::iter::once(0).chain(delays).enumerate() {
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if crate::db::is_transient(&e) => {
                tracing::debug!(attempt = i, error = %e, "{what} failed, retrying");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(sqlx::Error::PoolTimedOut))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// The batches a test batcher ran, in order.
    type Seen = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A batcher over `(n, urgent)` calls whose batches are recorded; lingers up to 10 s.
    fn recording(max: usize) -> (Batcher<(u32, bool), u32>, Seen) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let batcher = Batcher::spawn_patient(
            max,
            1,
            Duration::from_secs(10),
            |call: &(u32, bool)| call.1,
            move |calls: Vec<(u32, bool)>| {
                let ns: Vec<u32> = calls.iter().map(|c| c.0).collect();
                seen.lock().unwrap().push(ns.clone());
                async move { ns }
            },
        );
        (batcher, batches)
    }

    const PROMPTLY: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn an_urgent_call_does_not_wait_for_company() {
        let (batcher, batches) = recording(256);
        let out = tokio::time::timeout(PROMPTLY, batcher.call((1, true))).await;
        assert_eq!(out.expect("not held back by the linger"), Some(1));
        assert_eq!(*batches.lock().unwrap(), vec![vec![1]]);
    }

    #[tokio::test]
    async fn patient_calls_wait_for_each_other_and_an_urgent_one_ends_the_wait() {
        let (batcher, batches) = recording(256);
        let batcher = Arc::new(batcher);
        let first = tokio::spawn({
            let b = batcher.clone();
            async move { b.call((1, false)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = tokio::spawn({
            let b = batcher.clone();
            async move { b.call((2, false)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(batches.lock().unwrap().is_empty(), "still lingering");
        let urgent = tokio::time::timeout(PROMPTLY, batcher.call((3, true))).await;
        assert_eq!(urgent.expect("the urgent call ended the wait"), Some(3));
        assert_eq!(first.await.unwrap(), Some(1));
        assert_eq!(second.await.unwrap(), Some(2));
        assert_eq!(*batches.lock().unwrap(), vec![vec![1, 2, 3]]);
    }

    #[tokio::test]
    async fn a_full_batch_does_not_linger() {
        let (batcher, batches) = recording(2);
        let batcher = Arc::new(batcher);
        let first = tokio::spawn({
            let b = batcher.clone();
            async move { b.call((1, false)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = tokio::time::timeout(PROMPTLY, batcher.call((2, false))).await;
        assert_eq!(second.expect("full: run at once"), Some(2));
        assert_eq!(first.await.unwrap(), Some(1));
        assert_eq!(*batches.lock().unwrap(), vec![vec![1, 2]]);
    }
}
