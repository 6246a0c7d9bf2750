//! The serving plane: what peers see of this node. The prepared listener
//! and the tiny_http handler threads (`server`), the control lane that
//! sends file bodies and long answers on its own pool (`lane`), the routes and their
//! authentication (`api`), the library catalogue (`catalogue`, with the
//! facts read from file names in `naming`), and the byte-range and
//! conditional-request decisions (`range`, pure); the owner's status API
//! and `/metrics` (`status_api`), and the status page on top of it (`ui`).

pub mod api;
pub mod catalogue;
pub mod lane;
pub mod naming;
pub mod range;
pub mod server;
pub mod status_api;
pub mod ui;
