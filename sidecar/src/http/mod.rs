//! The HTTP side: the routes, the checks in front of them, the token, the
//! page's files, and the accept loop that bounds every connection (with
//! TLS when configured).

pub mod args;
pub mod auth;
pub mod front;
pub mod policy;
pub mod routes;
pub mod serve;
pub mod static_files;
pub mod tls;

pub use routes::{routes, start_from, AppState};
