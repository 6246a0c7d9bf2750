//! The HTTP server and its request tools, one door that the serving plane,
//! the *arr plane and the owner's pages all use: the prepared listener and
//! the tiny_http handler threads (`server`: `Handler`, `Reply`, `Router`,
//! file bodies), the control lane that sends file bodies and long answers
//! on its own pool (`lane`: `stream-N` threads, a per-key limit, a minimum
//! send rate), the one door for every credential (`gate`: the presented
//! key, the constant-time comparison, the per-address guess budget, the
//! cross-site check of `/api/v2`), headers, the request target and
//! percent-decoding (`request`), request parameters and bodies (`form`,
//! `multipart`), and cookie sessions (`sessions`). Knows no route of its
//! own and no plane: nothing here imports `serve`, `arr`, `download` or
//! `owner`.

pub mod form;
pub mod gate;
pub mod lane;
pub mod multipart;
pub mod request;
pub mod server;
pub mod sessions;
