//! The CRI client: the runtime and image services of a container runtime, over its unix
//! socket (CRI v1, which containerd 1.6 serves).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1 as api;

/// A connection to the runtime; cheap to clone (one HTTP/2 connection underneath).
#[derive(Clone, Debug)]
pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
    /// The connection itself, for containerd's own services on the same socket.
    pub channel: Channel,
}

/// `unix:///run/x.sock` or `/run/x.sock` as a path.
pub fn socket_path(endpoint: &str) -> PathBuf {
    PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint))
}

impl Cri {
    /// Connects lazily: the first call dials, and a dead runtime's socket is dialled again on
    /// the next call, so a restarted containerd is picked up without reconnecting by hand.
    pub fn connect(socket: &Path) -> Result<Cri> {
        let socket = socket.to_path_buf();
        let channel = Endpoint::try_from("http://[::1]:0")?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let socket = socket.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(&socket).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }));
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20),
            images: ImageServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20),
            channel,
        })
    }

    /// The runtime's name and version (`containerd`, `1.6.20~ds1`), once it answers.
    pub async fn version(&self) -> Result<(String, String)> {
        let v = self
            .runtime
            .clone()
            .version(api::VersionRequest {
                version: "v1".into(),
            })
            .await
            .context("asking the runtime its version over CRI")?
            .into_inner();
        Ok((v.runtime_name, v.runtime_version))
    }

    /// Stops a sandbox (its containers are killed, its network torn down); errors are the
    /// runtime's to log, a missing sandbox is already stopped.
    /// A container's status, if the runtime knows it.
    pub async fn container_status(&self, id: &str) -> Option<api::ContainerStatus> {
        self.runtime
            .clone()
            .container_status(api::ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().status)
    }

    pub async fn stop_sandbox(&self, id: &str) {
        let request = api::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        let _ = self.runtime.clone().stop_pod_sandbox(request).await;
    }

    /// Stops and removes a sandbox with its containers.
    pub async fn remove_sandbox(&self, id: &str) {
        self.stop_sandbox(id).await;
        let request = api::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        let _ = self.runtime.clone().remove_pod_sandbox(request).await;
    }

    /// Runs `cmd` in a container and waits (at most `timeout`): its exit code and its
    /// output (stdout then stderr).
    pub async fn exec(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<(i32, String), String> {
        let request = api::ExecSyncRequest {
            container_id: id.into(),
            cmd,
            timeout: timeout.as_secs() as i64,
        };
        let r = self
            .runtime
            .clone()
            .exec_sync(request)
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner();
        let out =
            String::from_utf8_lossy(&r.stdout).into_owned() + &String::from_utf8_lossy(&r.stderr);
        Ok((r.exit_code, out))
    }

    /// Waits until the runtime answers CRI calls, at most `limit`.
    pub async fn wait_ready(&self, limit: Duration) -> Result<(String, String)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.version().await {
                Ok(v) => return Ok(v),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(e.context(format!("the runtime did not answer within {limit:?}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct SubscribeRequest {
    #[prost(string, repeated, tag = "1")]
    filters: Vec<String>,
}

/// containerd's event envelope; only the topic is read (the rest stays encoded).
#[derive(Clone, PartialEq, prost::Message)]
struct Envelope {
    #[prost(string, tag = "2")]
    namespace: String,
    #[prost(string, tag = "3")]
    topic: String,
}

impl Cri {
    /// Follows containerd's task events (`/tasks/start`, `/tasks/exit`, `/tasks/oom`, …) in the
    /// `k8s.io` namespace, calling `on_event` for each, until the stream ends; an error when the
    /// runtime is not containerd or is down.
    pub async fn follow_task_events(&self, mut on_event: impl FnMut(&str)) -> Result<()> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.context("the runtime's events service")?;
        let path =
            http::uri::PathAndQuery::from_static("/containerd.services.events.v1.Events/Subscribe");
        let codec = tonic_prost::ProstCodec::<SubscribeRequest, Envelope>::default();
        let request = SubscribeRequest {
            filters: vec![r#"namespace==k8s.io,topic~="^/tasks/""#.into()],
        };
        let mut stream = grpc
            .server_streaming(tonic::Request::new(request), path, codec)
            .await
            .context("subscribing to containerd's events")?
            .into_inner();
        while let Some(envelope) = stream.message().await? {
            on_event(&envelope.topic);
        }
        Ok(())
    }
}
