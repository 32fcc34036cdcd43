//! Stop and pause requests for a long job (generation, training, evaluation): two flags the
//! job checks between decoding or training steps, set from another thread (the UI). One type
//! for every job, so the engine has one way to stop or pause whatever it runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct JobControl {
    stop: AtomicBool,
    pause: AtomicBool,
}

impl JobControl {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
    pub fn pause(&self) {
        self.pause.store(true, Ordering::SeqCst);
    }
    pub fn resume(&self) {
        self.pause.store(false, Ordering::SeqCst);
    }
    pub fn set_paused(&self, paused: bool) {
        self.pause.store(paused, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    pub fn is_paused(&self) -> bool {
        self.pause.load(Ordering::SeqCst)
    }

    /// The stop flag itself, for code that takes a plain `&AtomicBool` (the decoder).
    pub fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    /// Blocks while paused (and not stopped), checking every 50 ms.
    pub fn wait_while_paused(&self) {
        while self.is_paused() && !self.is_stopped() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Clears both flags before the next job starts.
    pub fn reset(&self) {
        self.stop.store(false, Ordering::SeqCst);
        self.pause.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_blocks_until_resumed_or_stopped() {
        let c = std::sync::Arc::new(JobControl::default());
        c.pause();
        let c2 = c.clone();
        let t = std::thread::spawn(move || c2.wait_while_paused());
        std::thread::sleep(Duration::from_millis(80));
        assert!(!t.is_finished());
        c.stop();
        t.join().unwrap();
        assert!(c.stop_flag().load(Ordering::SeqCst));
        c.reset();
        assert!(!c.is_stopped() && !c.is_paused());
    }
}
