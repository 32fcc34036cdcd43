//! See the crate docs for what this layer owns.
