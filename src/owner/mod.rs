//! The owner's surfaces: what the person who runs the node looks at. The
//! status API and `/metrics` (`status_api`), the status page on top of it
//! (`ui`), what the page shows beyond the registry (`dashboard`), and
//! `jack status` with the one shape of a status (`status`), `jack pause`
//! and `jack resume` (`control`). The top of the
//! planes: it reads the download plane and the catalogue; nothing below
//! imports it.

pub mod control;
pub mod dashboard;
pub mod ping;
pub mod status;
pub mod status_api;
pub mod ui;
