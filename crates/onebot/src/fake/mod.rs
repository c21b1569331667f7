//! A fake OneBot v11 HTTP server for tests and demos (feature `fake`).
//!
//! It follows the spec where Celeriac relies on it — `POST /{action}` with a JSON body, 401
//! without the bearer token and 403 with a wrong one, 406 for another content type, 400 for a
//! malformed body, 404 for an unknown action, replies shaped
//! `{"status","retcode","data","message","wording"}` — and answers failures the way go-cqhttp
//! does (`retcode` 100, `msg` code, Chinese `wording`). It keeps state: groups with members,
//! roles and mutes, increasing message ids, sent messages. A kick of someone not in the group
//! fails `MEMBER_NOT_FOUND` like a real implementation; so does a ban.
//!
//! Failure injection per action ([`Fault`]): a given reply, an HTTP status, a delay, a dropped
//! connection, for every call or the next N. Every request is recorded ([`Call`]) with its
//! server-side arrival time, and tests can await a number of calls instead of sleeping.
//!
//! - `state`: the groups, messages and the actions' normal answers.
//! - `server`: the HTTP side (accept loop, auth, content type, faults).

mod server;
mod state;

use crate::api::Role;
use serde_json::Value;
use state::State;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use state::{FakeMember, SentMessage, Target};

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    /// The action (the URL path without its slash).
    pub action: String,
    /// The JSON body (`null` when it was not JSON).
    pub params: Value,
    /// When it arrived, on the server's monotonic clock.
    pub at: Instant,
    /// When it arrived, wall clock.
    pub time: SystemTime,
    /// Whether it carried the right token (or none was required).
    pub authorized: bool,
    /// The client's address: calls from one connection share it.
    pub peer: SocketAddr,
}

/// What an injected fault does instead of (or before) the normal answer.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// Answer normally (with the fault's delay, if any).
    Normal,
    /// Answer HTTP 200 with this JSON body.
    Reply(Value),
    /// Answer this HTTP status with an empty body.
    Http(u16),
    /// Close the connection without answering.
    Drop,
}

/// A fault injected into one action (or `"*"`, every action). It applies to every matching
/// call until cleared, or to the next N with [`Fault::times`].
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// What to answer.
    pub kind: FaultKind,
    /// Wait this long before answering.
    pub delay: Duration,
    /// How many more calls it applies to (`None`: all).
    pub remaining: Option<u32>,
}

impl Fault {
    fn new(kind: FaultKind) -> Self {
        Fault {
            kind,
            delay: Duration::ZERO,
            remaining: None,
        }
    }

    /// A `failed` reply in go-cqhttp's shape: `retcode`, `msg` code and `wording`.
    pub fn failed(retcode: i64, msg: &str, wording: &str) -> Self {
        Fault::reply(state::failed_body(retcode, msg, wording))
    }

    /// A reply with any `status`, `retcode` and message (`message` and `wording` both).
    pub fn status(status: &str, retcode: i64, message: &str) -> Self {
        Fault::reply(serde_json::json!({
            "status": status, "retcode": retcode, "data": null,
            "message": message, "wording": message,
        }))
    }

    /// HTTP 200 with this body, whatever it is.
    pub fn reply(body: Value) -> Self {
        Fault::new(FaultKind::Reply(body))
    }

    /// An HTTP status with an empty body.
    pub fn http(status: u16) -> Self {
        Fault::new(FaultKind::Http(status))
    }

    /// The normal answer, `delay` late.
    pub fn delay(delay: Duration) -> Self {
        Fault::new(FaultKind::Normal).delayed(delay)
    }

    /// The connection closed without an answer.
    pub fn drop_connection() -> Self {
        Fault::new(FaultKind::Drop)
    }

    /// Wait `delay` before doing what the fault does.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Apply to the next `n` matching calls only.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    calls: watch::Sender<usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sets up a [`FakeOneBot`] before it starts.
#[derive(Debug)]
pub struct FakeBuilder {
    state: State,
    listen: SocketAddr,
}

impl FakeBuilder {
    /// Require `Authorization: Bearer TOKEN`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.state.token = Some(token.into());
        self
    }

    /// The bot account (`get_login_info`'s `user_id`).
    pub fn self_id(mut self, self_id: i64) -> Self {
        self.state.self_id = self_id;
        self
    }

    /// A group where the bot has `bot_role`, with `members` (user, role).
    pub fn group(mut self, group_id: i64, bot_role: Role, members: &[(i64, Role)]) -> Self {
        self.state.add_group(group_id, bot_role, members);
        self
    }

    /// Listen on `addr` instead of a free port on 127.0.0.1.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Bind and serve in the background until the [`FakeOneBot`] is dropped.
    pub async fn start(self) -> std::io::Result<FakeOneBot> {
        let listener = tokio::net::TcpListener::bind(self.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(self.state),
            calls: watch::channel(0).0,
        });
        let task = tokio::spawn(server::serve(listener, shared.clone()));
        Ok(FakeOneBot { addr, shared, task })
    }
}

/// A running fake OneBot v11 server. Dropping it stops it.
pub struct FakeOneBot {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeOneBot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeOneBot")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for FakeOneBot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeOneBot {
    /// A builder: no token, bot account 10000, no groups, a free port on 127.0.0.1.
    pub fn builder() -> FakeBuilder {
        FakeBuilder {
            state: State::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// Start with the builder's defaults.
    pub async fn start() -> std::io::Result<FakeOneBot> {
        Self::builder().start().await
    }

    /// The base URL (`http://127.0.0.1:PORT`), what `onebot.api_url` should be.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bot account.
    pub fn self_id(&self) -> i64 {
        self.shared.lock().self_id
    }

    /// Add (or replace) a member.
    pub fn add_member(&self, group_id: i64, user_id: i64, role: Role) {
        self.shared.lock().add_member(group_id, user_id, role);
    }

    /// Remove a member, as if they left without the bot hearing of it.
    pub fn remove_member(&self, group_id: i64, user_id: i64) {
        self.shared.lock().remove_member(group_id, user_id);
    }

    /// Whether `user_id` is in `group_id`.
    pub fn is_member(&self, group_id: i64, user_id: i64) -> bool {
        self.member(group_id, user_id).is_some()
    }

    /// A member's state.
    pub fn member(&self, group_id: i64, user_id: i64) -> Option<FakeMember> {
        self.shared.lock().member(group_id, user_id).cloned()
    }

    /// Messages sent and not recalled, oldest first.
    pub fn messages(&self) -> Vec<SentMessage> {
        self.shared.lock().messages.values().cloned().collect()
    }

    /// Inject `fault` into `action` (`"*"`: every action). Faults apply in the order injected.
    pub fn inject(&self, action: &str, fault: Fault) {
        self.shared.lock().faults.push((action.to_string(), fault));
    }

    /// Remove every fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Every request received so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// The requests for `action`.
    pub fn calls_of(&self, action: &str) -> Vec<Call> {
        let state = self.shared.lock();
        state
            .calls
            .iter()
            .filter(|c| c.action == action)
            .cloned()
            .collect()
    }

    /// Wait until at least `n` requests have arrived (or `timeout` passes); all requests so far.
    pub async fn wait_for_calls(&self, n: usize, timeout: Duration) -> Vec<Call> {
        let mut rx = self.shared.calls.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|count| *count >= n)).await;
        self.calls()
    }
}
