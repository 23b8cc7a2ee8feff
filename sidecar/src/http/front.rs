//! In front of the routes: the `Host` check, the `Origin` check, CORS
//! preflights, and the headers every answer carries.

use crate::http::policy::{self, Cors, HostPolicy};
use hyper::body::Incoming;
use std::future::Future;
use warp::http::{header, Method, Request, StatusCode};
use warp::reply::Response;
use warp::Reply;

/// Checks every request before the routes see it: `Host`, then `Origin`;
/// answers CORS preflights; adds the common headers to every answer.
#[derive(Debug)]
pub struct Front {
    /// Which `Host` values are this sidecar.
    pub hosts: HostPolicy,
    /// Which other origins may read it.
    pub cors: Cors,
    /// `http` or `https`, for the sidecar's own origin.
    pub scheme: &'static str,
}

fn text(status: StatusCode, msg: String) -> Response {
    warp::reply::with_status(msg, status).into_response()
}

impl Front {
    /// Runs one request through the checks and then `inner` (the routes).
    pub async fn handle<S, F>(&self, req: Request<Incoming>, inner: S) -> Response
    where
        S: FnOnce(Request<Incoming>) -> F,
        F: Future<Output = Response>,
    {
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(String::from)
            });
        // A request without a Host (HTTP/1.0) cannot come from a
        // rebinding browser, which always sends one.
        if let Some(h) = &host {
            if !self.hosts.allows(h) {
                let mut r = text(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "this sidecar does not serve the name {h:?} (a DNS-rebinding page would use one like it); \
                         if it is really this host's name, start the sidecar with --allow-host {}\n",
                        policy::host_name(h).unwrap_or_default()
                    ),
                );
                policy::decorate(r.headers_mut(), None);
                return r;
            }
        }
        let own = format!("{}://{}", self.scheme, host.as_deref().unwrap_or(""));
        let origin = req.headers().get(header::ORIGIN).cloned();
        let allowed = match &origin {
            None => None,
            Some(o) if self.cors.allows(o.to_str().unwrap_or(""), &own) => Some(o.clone()),
            Some(o) => {
                let mut r = text(
                    StatusCode::FORBIDDEN,
                    format!(
                        "pages from {:?} may not read this sidecar: start it with --allow-origin ORIGIN to let that page read it\n",
                        o.to_str().unwrap_or("?")
                    ),
                );
                policy::decorate(r.headers_mut(), None);
                return r;
            }
        };
        if req.method() == Method::OPTIONS
            && allowed.is_some()
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            let mut r = StatusCode::OK.into_response();
            policy::preflight(r.headers_mut());
            policy::decorate(r.headers_mut(), allowed.as_ref());
            return r;
        }
        let mut r = inner(req).await;
        policy::decorate(r.headers_mut(), allowed.as_ref());
        r
    }
}
