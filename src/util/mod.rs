//! Small pieces every layer may use.

pub mod control;
pub mod rng;
