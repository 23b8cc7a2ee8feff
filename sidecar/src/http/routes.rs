//! The routes: the stream, `/info`, `/migrations`, `/targets`,
//! `/healthz`, `/metrics` and the page itself, behind an optional token.
//! `Host`, CORS and the common headers are checked and added in front of
//! them ([`crate::http::serve::Front`]).
//!
//! Nothing here can change what is probed: the targets are fixed at start
//! (or by the targets file).

use crate::http::auth;
use crate::http::serve::ConnHandle;
use crate::http::static_files::{self, Source};
use crate::metrics::Metrics;
use crate::stream::Start;
use crate::targets::{verdict, Fleet, Target};
use migwatch_shared::wire::Info;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use warp::http::{header, StatusCode};
use warp::{Filter, Rejection, Reply};

/// How long a client cut off with `overflow` has to take what was queued
/// for it (the notice last) before its connection is closed.
const OVERFLOW_FLUSH: Duration = Duration::from_secs(1);

/// Everything the routes need.
#[derive(Clone)]
pub struct AppState {
    /// The targets being probed.
    pub fleet: Arc<Fleet>,
    /// Process-wide counters.
    pub metrics: Arc<Metrics>,
    /// Flips to true on shutdown; every stream ends then.
    pub shutdown: watch::Receiver<bool>,
    /// The built page, served at `/`.
    pub page: Option<Source>,
    /// Clients must pass `?token=` or `Authorization: Bearer` equal to
    /// this, if set.
    pub token: Option<Arc<str>>,
}

#[derive(Debug)]
struct BadToken;
impl warp::reject::Reject for BadToken {}

#[derive(Debug)]
struct BadSince;
impl warp::reject::Reject for BadSince {}

/// A `/targets/{name}/...` for a name no target has.
#[derive(Debug)]
struct UnknownTarget(String);
impl warp::reject::Reject for UnknownTarget {}

/// `%XX` escapes decoded (a browser's `encodeURIComponent` turns `:` into
/// `%3A`); target names have no `%` of their own.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The target a path names: `Some(name)` from `/targets/{name}/...`, `None`
/// for the first target (`/events`, `/info`, `/migrations`).
fn find(fleet: &Fleet, name: Option<&str>) -> Result<Arc<Target>, Rejection> {
    match name {
        Some(n) => {
            let n = percent_decode(n);
            fleet
                .get(&n)
                .ok_or_else(|| warp::reject::custom(UnknownTarget(n)))
        }
        None => fleet
            .first()
            .ok_or_else(|| warp::reject::custom(UnknownTarget(String::new()))),
    }
}

/// `GET /targets/{name}/migrations`: the sidecar detector's events.
#[derive(serde::Serialize)]
struct Migrations {
    migrations: Vec<migwatch_shared::report::MigrationRecord>,
}

fn with_token(token: Option<Arc<str>>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    query()
        .and(warp::header::optional::<String>("authorization"))
        .and_then(move |q: HashMap<String, String>, authz: Option<String>| {
            let token = token.clone();
            async move {
                match &token {
                    None => Ok(()),
                    Some(t)
                        if auth::authorized(
                            t,
                            q.get("token").map(String::as_str),
                            authz.as_deref(),
                        ) =>
                    {
                        Ok(())
                    }
                    Some(_) => Err(warp::reject::custom(BadToken)),
                }
            }
        })
        .untuple_one()
}

/// GET, and HEAD wherever GET works (hyper sends a HEAD answer's headers
/// only).
fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// Where a client resumes: `Last-Event-ID` (the browser's own reconnect)
/// wins over `?since=` (the page's manual reconnect). Empty means live; a
/// value that is not a whole number is a 400. Public for the fuzz target.
pub fn start_from(
    header: Option<String>,
    query: &HashMap<String, String>,
) -> Result<Start, Rejection> {
    let raw = header.or_else(|| query.get("since").cloned());
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(Start::Live),
        Some(s) => s
            .parse::<u64>()
            .map(Start::After)
            .map_err(|_| warp::reject::custom(BadSince)),
    }
}

/// The query string as a map (empty when absent or unparsable: the token
/// check then refuses, and `since` is absent).
fn query(
) -> impl Filter<Extract = (HashMap<String, String>,), Error = std::convert::Infallible> + Clone {
    warp::query::<HashMap<String, String>>()
        .or(warp::any().map(HashMap::new))
        .unify()
}

/// All routes.
pub fn routes(
    state: AppState,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    // `/targets/{name}/X` and the first target's `/X` share one handler.
    let named = |leaf: &'static str| {
        warp::path("targets")
            .and(warp::path::param::<String>())
            .and(warp::path(leaf))
            .and(warp::path::end())
            .map(Some)
            .or(warp::path(leaf).and(warp::path::end()).map(|| None))
            .unify()
    };
    let st = state.clone();
    let events = named("events")
        .and(get_or_head())
        .and(with_token(state.token.clone()))
        .and(warp::header::optional::<String>("last-event-id"))
        .and(query())
        .and(warp::ext::optional::<ConnHandle>())
        .and_then(
            move |name: Option<String>,
                  last: Option<String>,
                  q: HashMap<String, String>,
                  conn: Option<ConnHandle>| {
                let st = st.clone();
                async move {
                    let t = find(&st.fleet, name.as_deref())?;
                    let start = start_from(last, &q)?;
                    let body = client_stream(&t, start, conn, &st.metrics);
                    let reply = warp::reply::stream(body);
                    let reply =
                        warp::reply::with_header(reply, header::CONTENT_TYPE, "text/event-stream");
                    let reply = warp::reply::with_header(reply, header::CACHE_CONTROL, "no-store");
                    // Tells nginx-style proxies not to buffer the stream.
                    Ok::<_, Rejection>(warp::reply::with_header(reply, "x-accel-buffering", "no"))
                }
            },
        );

    let st = state.clone();
    let info = named("info")
        .and(get_or_head())
        .and(with_token(state.token.clone()))
        .and_then(move |name: Option<String>| {
            let st = st.clone();
            async move {
                let t = find(&st.fleet, name.as_deref())?;
                Ok::<_, Rejection>(warp::reply::json(&t.info))
            }
        });

    let st = state.clone();
    let migrations = named("migrations")
        .and(get_or_head())
        .and(with_token(state.token.clone()))
        .and_then(move |name: Option<String>| {
            let st = st.clone();
            async move {
                let t = find(&st.fleet, name.as_deref())?;
                let body = Migrations {
                    migrations: t.verdicts.records(),
                };
                Ok::<_, Rejection>(warp::reply::json(&body))
            }
        });

    let st = state.clone();
    let targets = warp::path!("targets")
        .and(get_or_head())
        .and(with_token(state.token.clone()))
        .map(move || {
            let list: Vec<Info> = st.fleet.list().iter().map(|t| t.info.clone()).collect();
            warp::reply::json(&list)
        });

    let st = state.clone();
    let overview = warp::path!("overview")
        .and(get_or_head())
        .and(with_token(state.token.clone()))
        .and(query())
        .map(move |q: HashMap<String, String>| {
            let seconds = q
                .get("seconds")
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(30);
            let body = migwatch_shared::report::Overview {
                // The streams' clock (the timebase), as `first_s` is.
                at_s: crate::probe::timebase::process().now_us() as f64 / 1e6,
                targets: st
                    .fleet
                    .list()
                    .iter()
                    .map(|t| t.verdicts.summary(&t.spec.name, seconds))
                    .collect(),
            };
            warp::reply::json(&body)
        });

    let healthz = warp::path!("healthz").and(get_or_head()).map(|| "ok\n");

    let st = state.clone();
    let metrics = warp::path!("metrics")
        .and(get_or_head())
        .and(with_token(state.token.clone()))
        .map(move || {
            let list = st.fleet.list();
            let names: Vec<String> = list
                .iter()
                .map(|t| crate::metrics::escape(&t.spec.name))
                .collect();
            let per: Vec<(String, &crate::metrics::TargetMetrics)> = names
                .into_iter()
                .zip(list.iter().map(|t| &t.metrics))
                .collect();
            let mut text = st.metrics.render(env!("CARGO_PKG_VERSION"), &per);
            verdict::render_all(&list, &mut text);
            warp::reply::with_header(text, header::CONTENT_TYPE, "text/plain; version=0.0.4")
        });
    let page_src = state.page.clone();
    // A file that is not there is a rejection, not an answer: a refused
    // token on an API path then wins over "not found" (see
    // handle_rejection).
    let page = get_or_head()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("if-none-match"))
        .and_then(move |path: warp::path::FullPath, inm: Option<String>| {
            let page_src = page_src.clone();
            async move {
                match &page_src {
                    Some(src) => static_files::sanitize(path.as_str())
                        .and_then(|n| src.find(&n))
                        .map(|f| static_files::respond(f, inm.as_deref()).into_response())
                        .ok_or_else(warp::reject::not_found),
                    None if path.as_str() == "/" => Ok(warp::reply::with_status(
                        "The page is not built into this sidecar, so it serves only its API \
                         (/targets, /events, /info, /metrics). Build it with `scripts/run.sh`, \
                         or pass --web-root DIR.\n",
                        StatusCode::NOT_FOUND,
                    )
                    .into_response()),
                    None => Err(warp::reject::not_found()),
                }
            }
        });

    events
        .or(info)
        .or(migrations)
        .or(targets)
        .or(overview)
        .or(healthz)
        .or(metrics)
        .or(page)
        .recover(handle_rejection)
}

/// One client's SSE body: the hub's stream, plus a log line when the
/// client comes and goes, and its connection shut after an `overflow`
/// (the body ends there; the socket must not linger with data queued).
fn client_stream(
    t: &Arc<Target>,
    start: Start,
    conn: Option<ConnHandle>,
    metrics: &Arc<Metrics>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>>
       + Send
       + Sync
       + 'static {
    let target = t.spec.name.clone();
    let peer = conn
        .as_ref()
        .map(|c| c.0.peer.to_string())
        .unwrap_or_default();
    tracing::info!(target_name = %target, peer = %peer, start = ?start, "client connected");
    let (o_target, o_peer) = (target.clone(), peer.clone());
    let on_overflow = move || {
        tracing::warn!(target_name = %o_target, peer = %o_peer, "client cut off: overflow (it stopped reading); closing its connection");
        if let Some(c) = conn {
            c.0.close_after(OVERFLOW_FLUSH);
        }
    };
    let body = t
        .hub
        .subscribe_with(start, t.closing(), metrics.clone(), Box::new(on_overflow));
    let bye = Disconnect { target, peer };
    futures_util::StreamExt::map(body, move |chunk| {
        let _ = &bye;
        chunk
    })
}

/// Logs a client's disconnect when its stream is dropped.
struct Disconnect {
    target: String,
    peer: String,
}

impl Drop for Disconnect {
    fn drop(&mut self) {
        tracing::info!(target_name = %self.target, peer = %self.peer, "client disconnected");
    }
}

async fn handle_rejection(
    err: Rejection,
) -> Result<warp::reply::Response, std::convert::Infallible> {
    let (status, msg) = if err.find::<BadToken>().is_some() {
        (
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: pass ?token=TOKEN or the header Authorization: Bearer TOKEN"
                .to_string(),
        )
    } else if let Some(UnknownTarget(name)) = err.find::<UnknownTarget>() {
        (
            StatusCode::NOT_FOUND,
            if name.is_empty() {
                "this sidecar has no targets now; see /targets".to_string()
            } else {
                format!("no target named {name:?}; the list is at /targets")
            },
        )
    } else if err.find::<BadSince>().is_some() {
        (
            StatusCode::BAD_REQUEST,
            "Last-Event-ID / ?since= must be an event id (a whole number)".to_string(),
        )
    } else if err.is_not_found() {
        (StatusCode::NOT_FOUND, "not found".to_string())
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed".to_string(),
        )
    } else {
        // Never echo warp's internal rejection (it names internals).
        tracing::debug!(rejection = ?err, "bad request");
        (StatusCode::BAD_REQUEST, "bad request".to_string())
    };
    Ok(warp::reply::with_status(msg + "\n", status).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_wins_over_query_and_garbage_is_refused() {
        let q: HashMap<String, String> = [("since".to_string(), "5".to_string())].into();
        assert_eq!(start_from(Some("9".into()), &q).unwrap(), Start::After(9));
        assert_eq!(start_from(None, &q).unwrap(), Start::After(5));
        assert_eq!(start_from(None, &HashMap::new()).unwrap(), Start::Live);
        assert!(start_from(Some("x".into()), &q).is_err());
    }
}
