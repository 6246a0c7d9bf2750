//! The download plane: from a stub to a whole file in `completed_dir`. The
//! one entry point and the worker pool (`downloads`), the watch folder
//! (`watch`, told of new stubs by inotify: `notify`), the peer client
//! (`peer`, whose plain-HTTP bodies can be spliced from the socket:
//! `direct`, and whose TLS with a `ca_file` trusts a pinned certificate:
//! `pinned`), one attempt by the §2.4 rules (`transfer`), the retry classes
//! (`retry`, pure), the hand-off into `completed_dir` (`handoff`), and
//! start-up reconciliation (`reconcile`), and the check of every byte
//! against the source's digests (`verify`), and what a download holds of
//! its pieces, as the status shows it (`pieces`).

pub mod aside;
pub mod contact;
pub mod direct;
pub mod downloads;
pub mod handoff;
pub mod notify;
pub mod peer;
pub mod pieces;
pub mod pinned;
pub mod reconcile;
pub mod retry;
pub mod space;
pub mod transfer;
pub mod verify;
pub mod watch;
pub mod written;
