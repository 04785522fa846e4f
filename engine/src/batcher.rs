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
        let (tx, mut rx) = mpsc::unbounded_channel::<(I, oneshot::Sender<O>)>();
        let run = Arc::new(run);
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            while let Some((i, reply)) = rx.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut inputs = vec![i];
                let mut replies = vec![reply];
                let deadline = tokio::time::Instant::now() + linger;
                while inputs.len() < max {
                    let next = match rx.try_recv() {
                        Ok(next) => next,
                        Err(_) if linger.is_zero() => break,
                        Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(next)) => next,
                            _ => break,
                        },
                    };
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
