//! How a headless command runs a job the workbench runs: the job's code on the command's own
//! thread, its events handed to the command (to draw a progress bar, print a line) on a thread
//! of their own as they come. Same job, same events; only what shows them differs.

use super::{Event, Sink};

/// Runs `job`, giving every event it sends to `on`, and returns what the job returned once
/// `on` has seen the last of them.
pub fn run<T>(job: impl FnOnce(&Sink) -> T, mut on: impl FnMut(Event) + Send) -> T {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::scope(|scope| {
        let shown = scope.spawn(move || {
            while let Some(e) = rx.blocking_recv() {
                on(e);
            }
        });
        let sink = Sink::new(tx);
        let out = job(&sink);
        // The channel closes with the last sender: `on` then returns.
        drop(sink);
        // A panic while showing an event is the command's own bug: it surfaces here.
        if let Err(p) = shown.join() {
            std::panic::resume_unwind(p);
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_shown_before_the_result_returns() {
        let mut seen = Vec::new();
        let result = run(
            |events| {
                for i in 0..100 {
                    events.send(Event::Log(i.to_string()));
                }
                "done"
            },
            |e| {
                if let Event::Log(l) = e {
                    seen.push(l)
                }
            },
        );
        assert_eq!(result, "done");
        assert_eq!(seen, (0..100).map(|i| i.to_string()).collect::<Vec<_>>());
    }
}
