//! Small pieces every layer may use.

pub mod allocator;
pub mod control;
pub mod rng;
