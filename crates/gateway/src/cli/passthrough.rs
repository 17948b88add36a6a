//! `mcp-guard demo passthrough`: the load benchmark's baseline. It forwards each POST body to
//! the upstream and answers with the upstream's status, content type and body, using what
//! `serve` uses (hyper's HTTP/1 server, the same upstream client, a multi-threaded tokio runtime,
//! the same allocator). What `serve` costs beyond it is the guard's own work.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;

use super::{Exit, PassthroughArgs};
use crate::serve::upstream_http::{UpstreamClient, upstream_client, upstream_uri};

/// Serves until the process is stopped.
pub fn run(args: &PassthroughArgs) -> Exit {
    if !args.bind.ip().is_loopback() {
        eprintln!(
            "error: `demo passthrough` has no authentication and listens on loopback only, not {}",
            args.bind
        );
        return Exit::Usage;
    }
    let upstream = match upstream_uri(&args.upstream) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: --upstream {e}");
            return Exit::Usage;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Runtime;
        }
    };
    match runtime.block_on(serve(args.bind, upstream)) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Runtime
        }
    }
}

async fn serve(bind: std::net::SocketAddr, upstream: Uri) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    eprintln!(
        "mcp-guard demo: passthrough on http://{}/mcp",
        listener.local_addr()?
    );
    let client = upstream_client().map_err(std::io::Error::other)?;
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let client = client.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<_>| {
                forward(client.clone(), upstream.clone(), request)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Headers the upstream needs to see (the client's `Authorization` is not among them).
const FORWARDED: [HeaderName; 6] = [
    CONTENT_TYPE,
    hyper::header::ACCEPT,
    HeaderName::from_static("mcp-protocol-version"),
    HeaderName::from_static("mcp-method"),
    HeaderName::from_static("mcp-name"),
    HeaderName::from_static("mcp-session-id"),
];

async fn forward(
    client: UpstreamClient,
    upstream: Uri,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(status_only(StatusCode::BAD_REQUEST));
    };
    let mut out = Request::new(Full::new(body));
    *out.method_mut() = Method::POST;
    *out.uri_mut() = upstream;
    for name in FORWARDED {
        for value in parts.headers.get_all(&name) {
            out.headers_mut().append(&name, value.clone());
        }
    }
    let Ok(answer) = client.request(out).await else {
        return Ok(status_only(StatusCode::BAD_GATEWAY));
    };
    let status = answer.status();
    let content_type = answer.headers().get(CONTENT_TYPE).cloned();
    let Ok(bytes) = answer.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(status_only(StatusCode::BAD_GATEWAY));
    };
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(CONTENT_TYPE, ct);
    }
    Ok(response)
}

fn status_only(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}
