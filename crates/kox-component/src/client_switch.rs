//! A `kube::Client` whose credentials can change while it is in use: every request is sent
//! through whichever client was set last. Components keep one client (and every `Api` made
//! from it) for their whole life; whoever renews their credentials (a rotated client
//! certificate, a refreshed service-account token) builds a new client and sets it here.
//!
//! Requests already under way (a watch, say) finish on the client they started on; the old
//! client's connections close once nothing uses them, so from then on only the new
//! credentials are presented. This is what client-go's certificate rotation does by closing
//! its connections when the certificate files change.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock, Weak};
use std::task::{Context, Poll};

use http::{Request, Response};
use kube::Client;
use kube::client::Body;

/// The handle that swaps the client behind the [`kube::Client`] [`ClientSwitch::new`] returns.
#[derive(Clone)]
pub struct ClientSwitch {
    current: Arc<RwLock<Client>>,
    /// Alive while the front client's service is.
    front: Weak<()>,
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
        };
        let front = Client::new(
            Current {
                current: switch.current.clone(),
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
        Box::pin(async move { client.send(request).await })
    }
}
