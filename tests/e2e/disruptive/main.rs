//! Disruptive end-to-end tests: they restart, kill or uninstall the server, so
//! they run alone, one at a time, after the main suite
//! (`cargo test -p lifecycle-e2e --test disruptive -- --test-threads=1`).

mod bounded;
mod connections;
mod controller_kill;
mod helm;
mod large_objects;
mod operations;
mod outputs_flood;
mod trust_offline;
