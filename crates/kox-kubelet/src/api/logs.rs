//! `/containerLogs/{namespace}/{pod}/{container}`: a container's output from its CRI log file
//! (`<RFC3339Nano> <stdout|stderr> <P|F> <text>` per line, written by the runtime), with the
//! kubelet's options: `follow`, `previous`, `sinceSeconds`, `sinceTime`, `tailLines`,
//! `limitBytes`, `timestamps`. A followed log is polled (no inotify instance per follower: the
//! host allows few) and ends once the container has exited and its last line is sent.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kox_component::http_proxy::Body;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::ApiError;
use super::pod_lookup::{form_pairs, get_pod, runtime_id, statuses};
use crate::Agent;
use crate::cri::api;

/// How often a followed log looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How often a followed log asks whether its container still runs.
const FOLLOW_STATE_EVERY: u32 = 10;

/// The kubelet's log options.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub since: Option<Timestamp>,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<u64>,
    pub timestamps: bool,
}

impl LogOptions {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut o = LogOptions::default();
        for (k, v) in form_pairs(query) {
            let bad = |what: &str| ApiError::bad_request(format!("invalid {k} {v:?}: {what}"));
            match k.as_str() {
                "follow" => o.follow = v == "true" || v == "1",
                "previous" => o.previous = v == "true" || v == "1",
                "timestamps" => o.timestamps = v == "true" || v == "1",
                "tailLines" => o.tail_lines = Some(v.parse().map_err(|_| bad("not a count"))?),
                "limitBytes" => o.limit_bytes = Some(v.parse().map_err(|_| bad("not a count"))?),
                "sinceSeconds" => {
                    let s: i64 = v.parse().map_err(|_| bad("not a number of seconds"))?;
                    o.since = Timestamp::now()
                        .checked_sub(jiff::SignedDuration::from_secs(s))
                        .ok();
                }
                "sinceTime" => o.since = Some(v.parse().map_err(|_| bad("not an RFC 3339 time"))?),
                _ => {}
            }
        }
        Ok(o)
    }
}

pub async fn serve(
    agent: &Agent,
    namespace: &str,
    pod_name: &str,
    container: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let opts = LogOptions::parse(query)?;
    let pod = get_pod(agent, namespace, pod_name).await?;
    let id = container_for_logs(&pod, container, opts.previous)?;
    let status = container_status(agent, &id).await?;
    let path = PathBuf::from(status.log_path);
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let cri = agent.cri.clone();
    tokio::spawn(async move {
        if let Err(e) = send_log(&cri, &id, &path, &opts, &tx).await {
            tracing::debug!(error = %e, "log stream ended");
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(
        StreamBody::new(stream)
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok(resp)
}

async fn container_status(agent: &Agent, id: &str) -> Result<api::ContainerStatus, ApiError> {
    agent
        .cri
        .container_status(id)
        .await
        .ok_or_else(|| ApiError::not_found(format!("container {id} not found in the runtime")))
}

/// The container whose log is read, with the kubelet's errors (`validateContainerLogStatus`).
fn container_for_logs(pod: &Pod, name: &str, previous: bool) -> Result<String, ApiError> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let fail = |what: String| {
        Err(ApiError::bad_request(format!(
            "container \"{name}\" in pod \"{pod_name}\" {what}"
        )))
    };
    let Some(status) = statuses(pod).find(|s| s.name == name) else {
        return fail("is not available".into());
    };
    let state = status.state.clone().unwrap_or_default();
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.container_id.clone().unwrap_or_default())
        .filter(|id| !id.is_empty());
    let id = if previous {
        match last {
            Some(id) => id,
            None => {
                return Err(ApiError::bad_request(format!(
                    "previous terminated container \"{name}\" in pod \"{pod_name}\" not found"
                )));
            }
        }
    } else if state.running.is_some() {
        status.container_id.clone().unwrap_or_default()
    } else if let Some(t) = &state.terminated {
        match t.container_id.clone().filter(|id| !id.is_empty()).or(last) {
            Some(id) => id,
            None => return fail("is terminated".into()),
        }
    } else if let Some(id) = last {
        id
    } else if let Some(w) = &state.waiting {
        let reason = w.reason.clone().unwrap_or_default();
        return fail(match reason.as_str() {
            "ErrImagePull" => "is waiting to start: image can't be pulled".into(),
            "ImagePullBackOff" => "is waiting to start: trying and failing to pull image".into(),
            _ => format!("is waiting to start: {reason}"),
        });
    } else {
        return fail("is waiting to start - no logs yet".into());
    };
    Ok(runtime_id(&id).to_string())
}

/// One record of a CRI log file.
#[derive(Debug, PartialEq)]
struct Record<'a> {
    time: &'a str,
    text: &'a [u8],
    /// The line goes on in the next record (`P`).
    partial: bool,
}

fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or_default();
    Some(Record {
        time,
        text,
        partial: tag == b"P",
    })
}

/// The client's bytes for one record.
fn render(record: &Record<'_>, opts: &LogOptions, out: &mut Vec<u8>) {
    if opts.timestamps {
        out.extend_from_slice(record.time.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(record.text);
    if !record.partial {
        out.push(b'\n');
    }
}

fn selected(record: &Record<'_>, opts: &LogOptions) -> bool {
    match opts.since {
        Some(since) => record
            .time
            .parse::<Timestamp>()
            .map(|t| t >= since)
            .unwrap_or(true),
        None => true,
    }
}

/// Sends the log at `path` to `tx`: the whole file (or its last lines), then, when following,
/// what the runtime appends until the container has exited.
async fn send_log(
    cri: &crate::cri::Cri,
    id: &str,
    path: &std::path::Path,
    opts: &LogOptions,
    tx: &mpsc::Sender<Bytes>,
) -> anyhow::Result<()> {
    let mut log = FollowedFile::open(path).await?;
    let mut pending = Vec::new();
    log.read_more(&mut pending).await?;
    let mut budget = opts.limit_bytes.unwrap_or(u64::MAX);
    let start = match opts.tail_lines {
        Some(n) => tail_start(&pending, n),
        None => 0,
    };
    pending.drain(..start);
    if !send_records(&mut pending, opts, &mut budget, tx).await? || !opts.follow {
        return Ok(());
    }
    let mut polls = 0u32;
    loop {
        if log.read_more(&mut pending).await? > 0 {
            if !send_records(&mut pending, opts, &mut budget, tx).await? {
                return Ok(());
            }
            continue;
        }
        polls += 1;
        if polls.is_multiple_of(FOLLOW_STATE_EVERY) && !running(cri, id).await {
            // One more read: lines written just before the exit.
            if log.read_more(&mut pending).await? > 0 {
                send_records(&mut pending, opts, &mut budget, tx).await?;
            }
            return Ok(());
        }
        tokio::select! {
            _ = tx.closed() => return Ok(()),
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
}

/// A log file read as it grows, across rotations: the open file is read to its end before
/// the new file at the same path (after the agent's rotation) is opened.
struct FollowedFile {
    path: PathBuf,
    file: tokio::fs::File,
    inode: u64,
}

impl FollowedFile {
    async fn open(path: &std::path::Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let file = tokio::fs::File::open(path).await?;
        let inode = file.metadata().await?.ino();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            inode,
        })
    }

    /// Appends what was written since the last read; 0 when nothing new.
    async fn read_more(&mut self, into: &mut Vec<u8>) -> anyhow::Result<usize> {
        use std::os::unix::fs::MetadataExt;
        let read = self.file.read_to_end(into).await?;
        if read > 0 {
            return Ok(read);
        }
        match tokio::fs::metadata(&self.path).await {
            Ok(m) if m.ino() != self.inode => {
                *self = Self::open(&self.path).await?;
                Ok(self.file.read_to_end(into).await?)
            }
            _ => Ok(0),
        }
    }
}

async fn running(cri: &crate::cri::Cri, id: &str) -> bool {
    cri.container_status(id)
        .await
        .is_some_and(|s| s.state == api::ContainerState::ContainerRunning as i32)
}

/// Sends every complete line of `pending` (keeping an unfinished last one); false once the
/// byte limit is reached or the client is gone.
async fn send_records(
    pending: &mut Vec<u8>,
    opts: &LogOptions,
    budget: &mut u64,
    tx: &mpsc::Sender<Bytes>,
) -> anyhow::Result<bool> {
    let complete = match pending.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None => return Ok(true),
    };
    let mut out = Vec::with_capacity(complete);
    for line in pending[..complete].split(|b| *b == b'\n') {
        if let Some(record) = parse_record(line)
            && selected(&record, opts)
        {
            render(&record, opts, &mut out);
        }
    }
    pending.drain(..complete);
    let within = (out.len() as u64).min(*budget) as usize;
    out.truncate(within);
    *budget -= within as u64;
    if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
        return Ok(false);
    }
    Ok(*budget > 0)
}

/// Where the last `n` lines of `data` start.
fn tail_start(data: &[u8], n: usize) -> usize {
    if n == 0 {
        return data.len();
    }
    let end = if data.ends_with(b"\n") {
        data.len() - 1
    } else {
        data.len()
    };
    let mut seen = 0;
    for (i, b) in data[..end].iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_and_render_as_the_kubelet_writes_them() {
        let r = parse_record(b"2024-05-01T10:00:00.123456789Z stdout F hello world").unwrap();
        assert_eq!(r.text, b"hello world");
        assert!(!r.partial);
        let mut out = Vec::new();
        render(&r, &LogOptions::default(), &mut out);
        let p = parse_record(b"2024-05-01T10:00:01Z stderr P part").unwrap();
        render(
            &p,
            &LogOptions {
                timestamps: true,
                ..Default::default()
            },
            &mut out,
        );
        assert_eq!(out, b"hello world\n2024-05-01T10:00:01Z part");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let data = b"a\nb\nc\n";
        assert_eq!(&data[tail_start(data, 2)..], b"b\nc\n");
        assert_eq!(&data[tail_start(data, 5)..], b"a\nb\nc\n");
        assert_eq!(tail_start(data, 0), data.len());
    }

    #[test]
    fn options_parse_from_the_query() {
        let o = LogOptions::parse(Some(
            "follow=true&tailLines=3&limitBytes=10&timestamps=true",
        ))
        .unwrap();
        assert!(o.follow && o.timestamps);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(3), Some(10)));
        assert!(LogOptions::parse(Some("tailLines=x")).is_err());
        let o = LogOptions::parse(Some("sinceTime=2024-05-01T10%3A00%3A00Z")).unwrap();
        assert_eq!(o.since, Some("2024-05-01T10:00:00Z".parse().unwrap()));
    }

    #[tokio::test]
    async fn the_byte_limit_cuts_the_output() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut pending = b"t stdout F abcdef\nt stdout F ghi\n".to_vec();
        let mut budget = 8;
        let more = send_records(&mut pending, &LogOptions::default(), &mut budget, &tx)
            .await
            .unwrap();
        assert!(!more);
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"abcdef\ng"));
    }
}
