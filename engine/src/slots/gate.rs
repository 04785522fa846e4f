//! The consumer's side of the slots: apalis asks its service stack whether it is ready before
//! it takes the next message from the backend, so a layer that is ready only with a
//! reservation in hand decides how many messages a queue takes.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use apalis::prelude::Task;
use tower::{Layer, Service};

use super::{SlotHold, Slots};

/// A message's reservation, handed from [`SlotGate`] to the handler in the task's data.
#[derive(Clone, Default)]
pub struct Reserved(Arc<Mutex<Option<SlotHold>>>);

impl Reserved {
    pub fn take(&self) -> Option<SlotHold> {
        self.0.lock().ok().and_then(|mut hold| hold.take())
    }
}

/// The consumer's gate: apalis takes the next message only once the gate holds a
/// reservation for it ([`Slots::reserve`]), which travels with the message to the handler.
/// So a queue whose slots are busy with long handlers takes no message it cannot start,
/// and one with short handlers takes the few it may claim ahead.
#[derive(Clone)]
pub struct SlotGate(pub Arc<Slots>);

impl<S> Layer<S> for SlotGate {
    type Service = GatedService<S>;

    fn layer(&self, inner: S) -> GatedService<S> {
        GatedService {
            inner,
            slots: self.0.clone(),
            reserving: None,
            reserved: None,
        }
    }
}

pub struct GatedService<S> {
    inner: S,
    slots: Arc<Slots>,
    reserving: Option<Pin<Box<dyn Future<Output = SlotHold> + Send>>>,
    reserved: Option<SlotHold>,
}

impl<S, Args> Service<Task<Args>> for GatedService<S>
where
    S: Service<Task<Args>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if self.reserved.is_none() {
            let slots = self.slots.clone();
            let reserving = self
                .reserving
                .get_or_insert_with(|| Box::pin(async move { slots.reserve().await }));
            let Poll::Ready(hold) = reserving.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            self.reserving = None;
            self.reserved = Some(hold);
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut task: Task<Args>) -> S::Future {
        let hold = self.reserved.take();
        task.inject_data(Reserved(Arc::new(Mutex::new(hold))));
        self.inner.call(task)
    }
}
