//! What every HTTP listener of Lumen (the sidecar's, the gate's) enforces
//! before a handler runs: who may send a command ([`guard`]), and how many
//! connections and how slow a client may be ([`connections`]). Shared by the
//! server and the gate, so neither reaches into the other.

pub mod guard;
pub mod connections;
