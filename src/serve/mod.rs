//! The serving plane: what peers see of this node. The peer routes and
//! their authentication (`api`), the library catalogue (`catalogue`), the
//! content digests of its files (`hasher`, a background thread), and
//! the byte-range and conditional-request decisions (`range`, pure). The
//! HTTP server itself and the request tools are `crate::http`'s.

pub mod api;
pub mod catalogue;
pub mod hasher;
pub mod range;
