//! A `kube::Client` whose credentials can change while it is in use: every request is sent
//! through whichever client was set last. Components keep one client (and every `Api` made
//! from it) for their whole life; whoever renews their credentials (a rotated client
//! certificate, a refreshed service-account token) builds a new client and sets it here.
//!
//! Requests already under way (a watch, say) finish on the client they started on; the old
//! client's connections close once nothing uses them, so from then on only the new
//! credentials are presented. This is what client-go's certificate rotation does by closing
//! its connections when the certificate files change.
//!
//! A 401 answer is reported to whoever renews ([`ClientSwitch::unauthorized`]): credentials
//! the server no longer accepts (a token whose ServiceAccount was deleted, say) are renewed
//! at once rather than at their usual time, as client-go's resettable token source does.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock, Weak};
use std::task::{Context, Poll};

use tokio::sync::Notify;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;

/// The handle that swaps the client behind the [`kube::Client`] [`ClientSwitch::new`] returns.
#[derive(Clone)]
pub struct ClientSwitch {
    current: Arc<RwLock<Client>>,
    /// Alive while the front client's service is.
    front: Weak<()>,
    /// Notified when a request is answered 401.
    unauthorized: Arc<Notify>,
}

impl ClientSwitch {
    /// A client sending through `initial` until [`ClientSwitch::set`] gives another, and the
    /// handle to do that.
    pub fn new(initial: Client) -> (Client, ClientSwitch) {
        let default_namespace = initial.default_namespace().to_string();
        let alive = Arc::new(());
        let switch = ClientSwitch {
            current: Arc::new(RwLock::new(initial)),
            front: Arc::downgrade(&alive),
            unauthorized: Arc::new(Notify::new()),
        };
        let front = Client::new(
            Current {
                current: switch.current.clone(),
                unauthorized: switch.unauthorized.clone(),
                _alive: alive,
            },
            default_namespace,
        );
        (front, switch)
    }

    /// Sends every later request through `client`.
    pub fn set(&self, client: Client) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = client;
    }

    /// Returns once a request through the front client has been answered 401 Unauthorized
    /// (at once if one was since the last call): its credentials need renewing now.
    pub async fn unauthorized(&self) {
        self.unauthorized.notified().await;
    }

    /// Whether the client [`ClientSwitch::new`] returned, and every clone of it, is gone: its
    /// credentials need no more renewing.
    pub fn unused(&self) -> bool {
        self.front.strong_count() == 0
    }
}

/// The service behind the front client: forwards each request to the current client.
#[derive(Clone)]
struct Current {
    current: Arc<RwLock<Client>>,
    unauthorized: Arc<Notify>,
    _alive: Arc<()>,
}

impl tower::Service<Request<Body>> for Current {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, kube::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let client = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let unauthorized = self.unauthorized.clone();
        Box::pin(async move {
            let response = client.send(request).await?;
            if response.status() == http::StatusCode::UNAUTHORIZED {
                unauthorized.notify_one();
            }
            Ok(response)
        })
    }
}
