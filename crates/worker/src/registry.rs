//! What a handler is ([`Handler`]: any async `Fn(Job) -> Outcome`) and the kind → handler
//! [`Registry`].

use crate::config::KindConfig;
use crate::job::{Job, Outcome};
use celeriac_core::JobKind;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// Runs jobs of one kind. Any `Fn(Job) -> impl Future<Output = Outcome>` is a handler.
///
/// Delivery is at least once: a job may run again after a crash or a lost lease, so a handler
/// must be idempotent (use [`Job::id`] to dedupe side effects downstream).
pub trait Handler: Send + Sync + 'static {
    /// Run one attempt.
    fn handle(&self, job: Job) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    fn handle(&self, job: Job) -> HandlerFuture {
        Box::pin(self(job))
    }
}

/// Kind → handler, and the retry policy defaults the kinds' domains give them.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn Handler>>,
    defaults: BTreeMap<String, KindConfig>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `handler` for `kind` (replacing any earlier one).
    pub fn register(&mut self, kind: &str, handler: impl Handler) -> &mut Self {
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        self
    }

    /// Register a handler taking the typed payload of `J`; a payload that does not decode is
    /// discarded with the decode error.
    pub fn register_typed<J, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        J: JobKind + Send + 'static,
        F: Fn(J, Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.register(J::KIND, move |job: Job| {
            let handler = handler.clone();
            async move {
                match job.payload_as::<J>() {
                    Ok(payload) => handler(payload, job).await,
                    Err(outcome) => outcome,
                }
            }
        })
    }

    /// Give `kind` default policy settings (e.g. a retry schedule), used where the operator's
    /// `[kinds."KIND"]` does not say otherwise (see [`crate::config`]).
    pub fn set_defaults(&mut self, kind: &str, defaults: KindConfig) -> &mut Self {
        self.defaults.insert(kind.to_string(), defaults);
        self
    }

    /// The default policy settings kinds were registered with.
    pub fn defaults(&self) -> impl Iterator<Item = (String, KindConfig)> + '_ {
        self.defaults.iter().map(|(k, d)| (k.clone(), d.clone()))
    }

    /// The handler for `kind`.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Handler>> {
        self.handlers.get(kind).cloned()
    }

    /// Registered kinds, sorted.
    pub fn kinds(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }
}
