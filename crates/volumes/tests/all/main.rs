//! Integration tests of wasmlet-volumes with real WASI guests (the
//! `read-file` fixture, built by `make -C fixtures OUT=target/fixtures`):
//! what a guest sees through the atomic writer's symlinks, subPath handles
//! and staged files.

mod wasi;
