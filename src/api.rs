//! Routes of the node's HTTP API (`PROTOCOL.md` §2).
//!
//! Translates requests into calls on the rest of jack and results into
//! JSON replies. Holds no state of its own beyond shared handles, and never
//! touches SQL (that is `db`'s job).

use tiny_http::{Method, Request};

use crate::server::{Handler, Reply, redact_query};

/// The node's API. Later issues add the peer, Torznab and qBittorrent routes.
#[derive(Debug, Default)]
pub struct Api {}

impl Api {
    pub fn new() -> Api {
        Api {}
    }
}

impl Handler for Api {
    fn handle(&self, req: &mut Request) -> Reply {
        let path = redact_query(req.url());
        let reply = match (req.method(), path) {
            (Method::Get | Method::Head, "/ping") => {
                Reply::json(200, &serde_json::json!({"status": "OK"}))
            }
            (_, "/ping") => Reply::error(405, "BAD_REQUEST", "Method not allowed")
                .with_header("Allow", "GET, HEAD"),
            _ => Reply::error(404, "NOT_FOUND", "Not found"),
        };
        log::debug!(
            "http method={} path={path} status={}",
            req.method(),
            reply.status
        );
        reply
    }
}
